"""``possim lab``: serve the trainer's live lab (:mod:`possim.views.lab`) on 127.0.0.1 and open it in a browser.

Starlette routes the page, its script and style (shipped in the package: nothing comes from
a network), the JSON endpoint that re-runs an edited case, and the two downloads. uvicorn
serves them on a socket bound here, so ``--port 0`` takes a free port and the readiness line
names the real one, printed once the server accepts connections.
"""

from __future__ import annotations

import json
import socket
import webbrowser
from collections.abc import Callable
from typing import Any

import click

from possim.cli import options as opt
from possim.cli.errors import InputError


def app(lang: str = "en") -> Any:
    """The lab's Starlette application (the page in ``lang`` unless its URL asks for another): every
    bad input becomes one line and status 400. Only requests addressed to this machine by name
    (127.0.0.1, localhost) are answered, so a web page elsewhere cannot reach the lab by renaming it."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from possim.views import lab

    def guarded(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except lab.LabError as exc:
                return PlainTextResponse(lab.bad_request(exc, request.url.path) + "\n", status_code=400)
            return response
        return endpoint

    async def index(request: Request) -> Response:
        return HTMLResponse(lab.page(lab.check_lang(request.query_params.get("lang", lang))))

    async def run(request: Request) -> Response:
        try:
            data = lab.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise lab.LabError(f"the request is not JSON: {exc}") from None
        return JSONResponse(lab.run(lab.parse_case(data)))

    def case_of(request: Request) -> lab.Case:
        text = request.query_params.get("case")
        if text is None:
            raise lab.LabError("case: missing (the JSON of scenario, policies, lang and edits)")
        try:
            return lab.parse_case(lab.loads(text))
        except json.JSONDecodeError as exc:
            raise lab.LabError(f"case: not JSON: {exc}") from None

    def attachment(name: str, body: str, media: str) -> Response:
        return Response(body, media_type=media, headers={"Content-Disposition": f"attachment; filename=\"{name}\""})

    async def scenario_toml(request: Request) -> Response:
        return attachment(*lab.scenario_file(case_of(request)), "application/toml; charset=utf-8")

    async def report_html(request: Request) -> Response:
        return attachment(*lab.report_file(case_of(request)), "text/html; charset=utf-8")

    return Starlette(routes=[
        Route("/", guarded(index)),
        Route("/api/run", guarded(run), methods=["POST"]),
        Route("/download/scenario.toml", guarded(scenario_toml)),
        Route("/download/report.html", guarded(report_html)),
        Mount("/static", StaticFiles(directory=lab.ASSETS), name="static"),
    ], middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])])


def serve(port: int, open_browser: bool, lang: str = "en") -> None:
    """Bind 127.0.0.1:``port`` (0: a free one), announce the URL once serving, stop on Ctrl-C or SIGTERM."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise InputError(f"--port {port}: cannot listen on 127.0.0.1: {exc.strerror}") from None
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                click.echo(f"possim lab: serving {url}")
                if open_browser:
                    webbrowser.open(url)

    config = uvicorn.Config(app(lang), log_level="warning", access_log=False, lifespan="off")
    try:
        Server(config).run(sockets=[sock])
    finally:
        sock.close()


@click.command("lab")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--browser/--no-browser", "open_browser", default=True, help="Open the page in a web browser.")
@opt.lang()
def lab_command(port: int, open_browser: bool, lang: str) -> None:
    """The trainer's live lab: pick a scenario, click arrows to lose, delay or duplicate messages, see the money.

    Serves a page on 127.0.0.1 only, in the language of --lang until the page switches; prints
    "possim lab: serving URL" when ready. Ctrl-C stops it.
    """
    serve(port, open_browser, lang)
