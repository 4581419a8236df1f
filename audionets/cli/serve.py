"""``audionets serve``: a local web page to separate and classify audio files.

Loads the two models, then serves the page until Ctrl-C: pick or drop a file, watch the
upload and chunk progress, play and download the separated sources with their spectrograms,
or see the top classes. Uploads and results live in one temporary folder removed when the
server stops. Binds to 127.0.0.1 (this machine only) unless ``--host`` says otherwise.
Needs the ``serve`` extra: ``pip install "audionets[serve]"``.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import socket

from audionets.cli._shared import number

HELP = "a local web page that separates and classifies audio files"

#: The modules of the serve extra, by the name pip knows them under.
EXTRA = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; "
                             "0.0.0.0 opens the page to the network)")
    parser.add_argument("--port", type=number(int, 0), default=8000,
                        help="port to listen on; 0 picks a free one (default: 8000)")
    parser.add_argument("--model", default=None, metavar="NAME|DIR|HUB_ID",
                        help="separation model (default: sudormrf-tts-2spk)")
    parser.add_argument("--classifier", default=None, metavar="NAME|DIR|HUB_ID",
                        help="classification model (default: cnn-synth-events)")
    parser.add_argument("--max-upload-mb", type=number(float, 0, inclusive=False), default=50.0,
                        metavar="N", help="largest file accepted, in MB (default: 50)")
    parser.add_argument("--max-seconds", type=number(float, 0, inclusive=False), default=600.0,
                        metavar="S", help="longest audio accepted, in seconds (default: 600)")
    parser.add_argument("--top-k", type=number(int, 1), default=5, metavar="K",
                        help="classes shown by the classify tab (default: 5)")
    parser.add_argument("--device", default="cpu", metavar="DEVICE",
                        help="cpu, cuda, cuda:N or auto (CUDA when there is a GPU); default: cpu")


def check_extra() -> None:
    """ConfigError naming the install command when a module of the serve extra is missing."""
    from audionets.errors import ConfigError

    missing = [pip for module, pip in EXTRA.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigError(f"the web page needs {', '.join(missing)}; install them with "
                          "pip install \"audionets[serve]\"")


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a ConfigError saying why it cannot be had."""
    from audionets.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        raise ConfigError(f"{host}:{port}: cannot listen there ({err.strerror or err}); choose "
                          "another --port or --host") from None
    return sock


def loopback_hosts(host: str) -> list[str] | None:
    """Host header values to accept for a server on ``host``: for a loopback address its
    names (a page elsewhere cannot reach it by DNS rebinding); None (any) otherwise."""
    try:
        if not ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        if host != "localhost":
            return None
    return ["127.0.0.1", "localhost", "[::1]", host]


def run(args: argparse.Namespace) -> int:
    check_extra()
    import uvicorn

    from audionets.inference import DEFAULT_CLASSIFIER, DEFAULT_SEPARATOR, Classifier, Separator
    from audionets.serve.app import Service, create_app

    with listen(args.host, args.port) as sock:  # a taken port fails before the models load
        separator = Separator.from_pretrained(args.model or DEFAULT_SEPARATOR,
                                              device=args.device)
        classifier = Classifier.from_pretrained(args.classifier or DEFAULT_CLASSIFIER,
                                                device=args.device)
        service = Service(separator, classifier,
                          max_upload_bytes=round(args.max_upload_mb * 2**20),
                          max_seconds=args.max_seconds, top_k=args.top_k)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"audionets serve: http://{shown}:{port}/ (Ctrl-C to stop)", flush=True)
        app = create_app(service, allowed_hosts=loopback_hosts(args.host))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        try:
            server.run(sockets=[sock])
        finally:  # the app's shutdown closes it too; this covers a server that never started
            service.store.close()
    return 0
