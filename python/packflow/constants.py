"""Names packflow looks for in the environment and in a project directory."""

BACKEND_CONFIG_PATH_ENV_VAR_NAME = "BACKEND_CONFIG_FILE_PATH"
PACKAGING_CONFIG_NAME = "packflow.yaml"
REQUIREMENTS_TEXT_NAME = "requirements.txt"
LOG_LEVEL_ENV_VAR_NAME = "PACKFLOW_LOG_LEVEL"
#: The manifest ``packflow export`` writes into every archive: each file with its SHA-256.
ARCHIVE_MANIFEST_NAME = "packflow.lock"

# --- The defaults of each front door, declared once. The options of the
# commands, the keyword defaults of the functions behind them and the option
# tables in docs/ are all checked against these (tests/test_defaults.py).

#: ``packflow serve``, :func:`packflow.serving.create_app` and its batcher.
SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8080
SERVE_MAX_BATCH_ROWS = 1024
#: 0: a batch starts as soon as the model is free, with whatever is queued.
SERVE_MAX_WAIT_MS = 0.0
SERVE_MAX_QUEUE_ROWS = 10_000
#: The command takes it in MiB (``--max-body-mb``).
SERVE_MAX_BODY_BYTES = 16 << 20
SERVE_REQUEST_TIMEOUT_S = 30.0
SERVE_MAX_CONNECTIONS = 1024
#: The request line and header fields of one request, in all.
SERVE_MAX_HEADER_BYTES = 32 << 10
SERVE_MAX_HEADERS = 100
#: From a connection's opening, or a request's first byte, to its last header field.
SERVE_HEADER_TIMEOUT_S = 10.0
#: How long a connection may wait between an answer and the next request.
SERVE_KEEP_ALIVE_S = 5.0
#: Server processes of `packflow serve` on its one port (`--workers`).
SERVE_WORKERS = 1
#: The gRPC door (``--grpc-port``): the largest answer message, and the RPCs
#: running at once (more get RESOURCE_EXHAUSTED). Its largest request message
#: is the body limit.
SERVE_GRPC_MAX_SEND_BYTES = 64 << 20
SERVE_GRPC_MAX_CONCURRENT_RPCS = 1024

#: ``packflow run``, :func:`packflow.run_stream` and :class:`packflow.LineReader`
#: (the reader's line limit is ``packflow.engine.DEFAULT_MAX_LINE_BYTES``).
RUN_BATCH_SIZE = 1000
RUN_MAX_WAIT_MS = 50.0

#: ``packflow run`` with a ``kafka://`` input (docs/kafka.md): the most input
#: messages, and their bytes, consumed but not yet acknowledged by the broker
#: on the output side; at the cap, consumption waits.
KAFKA_MAX_IN_FLIGHT = 20_000
KAFKA_MAX_IN_FLIGHT_MB = 64
#: How long a stop (a signal, --stop-when-idle, a revocation) waits for the
#: broker to acknowledge what is in flight before committing what is done.
KAFKA_DRAIN_TIMEOUT_S = 30.0
#: How long the start of a run waits for the broker to answer.
KAFKA_CONNECT_TIMEOUT_S = 10.0
