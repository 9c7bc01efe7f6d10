"""The peers of ``packflow serve`` in the serving benchmark, each running the
same model (the backend of examples/firewall-anomaly, loaded by packflow):

- ``litserve``: LitServe with batching on (its API server and one inference
  worker process, ZeroMQ queue), batching requests the way a LitAPI does;
- ``fastapi``: a FastAPI endpoint that calls the backend once per request,
  under uvicorn with uvloop and httptools.

    python benches/serve/peers.py litserve --port 8001 [--max-batch-size 64]
    python benches/serve/peers.py fastapi --port 8002

Both answer ``POST`` with a JSON object (one record) or array (records) like
``packflow serve``'s ``/invocations`` (LitServe's route is ``/predict``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "firewall-anomaly"


def load_backend():
    from packflow.loaders import InferenceBackendLoader

    return InferenceBackendLoader.from_project(EXAMPLE)


try:
    # At module level: FastAPI resolves the endpoint's annotations here.
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
except ImportError:  # only the LitServe peer can run
    FastAPI = None


def run_fastapi(port: int) -> None:
    import uvicorn

    backend = load_backend()
    app = FastAPI()

    @app.post("/invocations")
    async def invocations(request: Request) -> JSONResponse:
        return JSONResponse(backend(await request.json()))

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


try:
    import litserve as ls
except ImportError:  # only the FastAPI peer can run
    ls = None

if ls is not None:
    # At module level: LitServe pickles the API into its worker process.
    class FirewallAPI(ls.LitAPI):
        def setup(self, device):
            self.backend = load_backend()

        def decode_request(self, request):
            return request

        def batch(self, inputs):
            return inputs

        def predict(self, requests):
            # One backend call for the batch: every request's records, flattened.
            sizes = [len(r) if isinstance(r, list) else 1 for r in requests]
            records = [x for r in requests for x in (r if isinstance(r, list) else [r])]
            outputs = self.backend(records)
            out, start = [], 0
            for request, size in zip(requests, sizes):
                part = outputs[start : start + size]
                out.append(part if isinstance(request, list) else part[0])
                start += size
            return out

        def unbatch(self, output):
            return output

        def encode_response(self, output):
            return output


def run_litserve(port: int, max_batch_size: int, batch_timeout: float) -> None:
    api = FirewallAPI(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, fast_queue=True)
    server.run(
        host="127.0.0.1",
        port=port,
        num_api_servers=1,
        log_level="warning",
        generate_client_file=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("server", choices=["litserve", "fastapi"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--batch-timeout", type=float, default=0.005)
    args = parser.parse_args()
    if args.server == "fastapi":
        run_fastapi(args.port)
    else:
        run_litserve(args.port, args.max_batch_size, args.batch_timeout)


if __name__ == "__main__":
    main()
