"""The Open Inference Protocol's gRPC messages and service (package
``inference``), generated from ``grpc_predict_v2.proto``: the protocol's own
text (the Open Inference Protocol repository's
specification/protocol/open_inference_grpc.proto, license header kept; KServe's
copy of the same name adds model repository RPCs, not served here).

Do not edit the generated modules: change the .proto and run ``make proto``,
which runs, in this directory,

    python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \
        grpc_predict_v2.proto

with grpcio-tools 1.72.2 (protobuf 6.30 code: the ``grpc`` extra's floors),
then edits two lines: the descriptors go into a private
``DescriptorPool()``, not protobuf's default pool, where tritonclient's and
kserve's own ``inference.*`` messages live (a second copy there is a
"duplicate symbol" error at import); and the service module imports the
messages relatively.
"""
