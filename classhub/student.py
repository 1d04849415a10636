"""A student's browser, without a browser: the login form with its xsrf token, cookies, the hub's
spawn, the server's OAuth redirects, and a kernel run over its websocket through the proxy.

The server's address is the hub's to say (the user model's `server`): with USER_SUBDOMAINS it is
on a host of its own, NAME.<hub's host>. Where this machine's DNS does not know those names, a
Browser made with `address` sends every request there, the names kept in the Host header (as
curl --connect-to does), so cookies and origins stay the ones a student's browser sees.

Used by `invoke rehearse` (many students at once) and by the end-to-end tests. Every failure is a
`StudentError` saying what the student saw; it is an AssertionError, so tests read it as one.
"""

from __future__ import annotations

import json
import re
import ssl
import time
import uuid
from urllib.parse import urljoin, urlparse, urlsplit, urlunsplit

import requests
import requests.adapters
import urllib3
import websocket


class StudentError(AssertionError):
    """What went wrong, as the student would see it."""


def _expect(condition: object, why: object) -> None:
    if not condition:
        raise StudentError(why)


class KernelDied(StudentError):
    """The kernel died while running the code (killed for memory, say) and is being restarted."""


class _Via(requests.adapters.HTTPAdapter):
    """Sends every request over plain HTTP to one address (HOST:PORT), the URL's own host in the
    Host header; the session sees the URL it asked for (cookies, redirects)."""

    def __init__(self, address: str):
        super().__init__()
        self.address = address

    def send(self, request, **kwargs):  # type: ignore[override]  # the same call, passed on
        sent = request.copy()
        parts = urlsplit(request.url)
        sent.url = urlunsplit(parts._replace(scheme="http", netloc=self.address))
        sent.headers["Host"] = parts.netloc
        response = super().send(sent, **kwargs)
        response.url, response.request = request.url, request
        return response


class Browser:
    def __init__(self, hub_url: str, user: str, address: str | None = None):
        self.hub_url = hub_url  # http://127.0.0.1:PORT/NAME/, or the public URL with `address`
        self.user = user
        self.address = address  # HOST:PORT every request goes to (see the module's docstring)
        self.session = requests.Session()
        if address:
            for scheme in ("http://", "https://"):
                self.session.mount(scheme, _Via(address))
        self.prefix = urlparse(hub_url).path  # /NAME/
        self.progress: list[str] = []  # the spawn page's messages during the last start
        self._server_url: str | None = None
        if hub_url.startswith("https://"):
            self.session.verify = False  # the bundled nginx's self-signed certificate
            self.session.trust_env = False  # or REQUESTS_CA_BUNDLE would win over verify
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def _xsrf(self, path: str) -> str:
        """The _xsrf cookie the page at `path` set (hub and server each set their own)."""
        best = None
        for cookie in self.session.cookies:
            if (
                cookie.name == "_xsrf"
                and path.startswith(cookie.path or "/")
                and (best is None or len(cookie.path) > len(best.path))
            ):
                best = cookie
        return (best.value or "") if best else ""

    @staticmethod
    def _form_token(page: requests.Response, form: str) -> str:
        """The _xsrf value of the form on `page` (JupyterHub puts one in each of its forms)."""
        token = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        if token is None:
            raise StudentError(f"the {form} form has no _xsrf field")
        return token.group(1)

    def login(self, password: str) -> requests.Response:
        page = self.session.get(self.hub_url + "hub/login")
        page.raise_for_status()
        return self.session.post(
            self.hub_url + "hub/login",
            data={"_xsrf": self._form_token(page, "login"), "username": self.user,
                  "password": password},
            allow_redirects=False,
        )  # fmt: skip

    def signup(self, password: str, confirmation: str | None = None) -> requests.Response:
        """Sign up on the hub's sign-up page (AUTHENTICATOR=native); the page it answers with."""
        page = self.session.get(self.hub_url + "hub/signup")
        if page.status_code != 200:
            return page
        return self.session.post(
            self.hub_url + "hub/signup",
            data={
                "_xsrf": self._form_token(page, "sign-up"),
                "username": self.user,
                "signup_password": password,
                "signup_password_confirmation": password if confirmation is None else confirmation,
            },
        )

    def hub_api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"X-XSRFToken": self._xsrf(self.prefix + "hub/")}
        return self.session.request(
            method, self.hub_url + "hub/api" + path, headers=headers, **kwargs
        )

    def start(self, timeout: float = 300) -> float:
        """Start my server as the hub's home page does and follow the spawn's progress stream
        (what the spawn-pending page listens to); returns seconds until the server is ready."""
        started = time.monotonic()
        self.progress = []
        self._server_url = None
        response = self.hub_api("POST", f"/users/{self.user}/server")
        already = response.status_code == 400 and "is already running" in response.text
        _expect(
            already or response.status_code in (201, 202), (response.status_code, response.text)
        )
        if response.status_code == 201 or already:
            return time.monotonic() - started
        # The hub sends an event per step and a blank line every 8 s, so a read never waits long.
        with self.hub_api(
            "GET", f"/users/{self.user}/server/progress", stream=True, timeout=(30, 60)
        ) as stream:
            _expect(stream.status_code == 200, (stream.status_code, stream.text[:300]))
            for line in stream.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line.removeprefix("data:"))
                    self.progress.append(event.get("message", ""))
                    if event.get("ready"):
                        return time.monotonic() - started
                    _expect(not event.get("failed"), event.get("message") or event)
                if time.monotonic() - started > timeout:
                    break
        raise StudentError(
            f"{self.user}'s server not ready after {timeout}s (or the hub's "
            "progress stream ended without saying)"
        )

    def stop(self, timeout: float = 120) -> None:
        response = self.hub_api("DELETE", f"/users/{self.user}/server")
        self._server_url = None
        _expect(response.status_code in (202, 204), (response.status_code, response.text))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.hub_api("GET", f"/users/{self.user}").json().get("servers"):
                return
            time.sleep(0.5)
        raise StudentError(f"{self.user}'s server did not stop in {timeout}s")

    @property
    def server_url(self) -> str:
        """My server's URL, as the hub says (asked once per start): a host of its own with
        USER_SUBDOMAINS, else under the hub's. Before the server runs, the path under the hub's."""
        if self._server_url is None:
            model = self.hub_api("GET", f"/users/{self.user}")
            said = model.json().get("server") if model.status_code == 200 else None
            if not said:
                return self.hub_url + f"user/{self.user}/"
            self._server_url = urljoin(self.hub_url, said)
        return self._server_url

    def open_lab(self) -> requests.Response:
        """Open JupyterLab: follows the server's OAuth round trip through the hub."""
        return self.session.get(self.server_url + "lab")

    def server_api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"X-XSRFToken": self._server_xsrf()}
        return self.session.request(
            method, self.server_url + "api" + path, headers=headers, **kwargs
        )

    def _server_xsrf(self) -> str:
        """The _xsrf cookie my server set (on its own host with USER_SUBDOMAINS)."""
        return self.cookies_for(self.server_url).get("_xsrf", "")

    def cookies_for(self, url: str) -> dict[str, str]:
        """The cookies this browser sends with a request for `url` (the jar's own rules)."""
        header = requests.cookies.get_cookie_header(
            self.session.cookies, requests.Request("GET", url).prepare()
        )
        pairs = (item.partition("=") for item in (header or "").split("; ") if item)
        return {name: value for name, _, value in pairs}

    def new_kernel(self, folder: str = "") -> str:
        """Start a python3 kernel on my server, in `folder` of my home; its id (a notebook kept
        open: `run_in` runs code in it, its variables kept between runs)."""
        kernel = self.server_api("POST", "/kernels", json={"name": "python3", "path": folder})
        _expect(kernel.status_code == 201, (kernel.status_code, kernel.text))
        return kernel.json()["id"]

    def start_code(self, code: str, timeout: float = 60) -> str:
        """Start `code` in a new kernel and leave it running there (as a closed browser tab
        does); returns the kernel's id once the kernel reports itself busy with it."""
        kernel_id = self.new_kernel()
        _execute(self, kernel_id, code, timeout, until_busy=True)
        return kernel_id

    def channels(self, kernel_id: str, timeout: float = 60) -> Channels:
        """My kernel's websocket, kept open (`Channels.run` runs code over it again and again)."""
        return Channels(self, kernel_id, timeout)

    def run_in(self, kernel_id: str, code: str, timeout: float = 60) -> str:
        """Run `code` in my kernel `kernel_id` (from `new_kernel`); what it printed."""
        return _execute(self, kernel_id, code, timeout)

    def run(self, code: str, timeout: float = 60, keep: bool = False, folder: str = "") -> str:
        """Start a kernel (in `folder`, as for a notebook there), run `code` over its websocket,
        return what it printed; then stop the kernel, unless `keep` (a student's notebook stays
        open: the kernel goes with the server)."""
        kernel_id = self.new_kernel(folder)
        try:
            return _execute(self, kernel_id, code, timeout)
        finally:
            if not keep:
                self.server_api("DELETE", f"/kernels/{kernel_id}")


def _execute(
    browser: Browser, kernel_id: str, code: str, timeout: float, until_busy: bool = False
) -> str:
    channels = Channels(browser, kernel_id, timeout)
    try:
        return channels.run(code, timeout, until_busy)
    finally:
        channels.close()


class Channels:
    """A kernel's websocket, kept open as a notebook's browser tab keeps it: `run` sends code
    over it, as often as asked, and reads what the kernel printed."""

    def __init__(self, browser: Browser, kernel_id: str, timeout: float = 60):
        self.user = browser.user
        self.session_id = uuid.uuid4().hex
        server = urlsplit(browser.server_url)
        path = f"{server.path}api/kernels/{kernel_id}/channels?session_id={self.session_id}"
        secure = server.scheme == "https" and not browser.address
        ws_url = f"{'wss' if secure else 'ws'}://{browser.address or server.netloc}{path}"
        # The cookies a browser sends to the server's websocket (its own host and path).
        sent = browser.cookies_for(f"{server.scheme}://{server.netloc}{path}")
        cookies = "; ".join(f"{name}={value}" for name, value in sent.items())
        self.ws = websocket.create_connection(
            ws_url, timeout=timeout, cookie=cookies, origin=f"{server.scheme}://{server.netloc}",
            host=server.netloc, sslopt={"cert_reqs": ssl.CERT_NONE},
            header=[f"X-XSRFToken: {browser._server_xsrf()}"],
        )  # fmt: skip

    def close(self) -> None:
        self.ws.close()

    def run(self, code: str, timeout: float = 60, until_busy: bool = False) -> str:
        """Run `code`; what it printed."""
        ws = self.ws
        msg_id = uuid.uuid4().hex
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": self.user,
                        "session": self.session_id,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        output = []
        # Done when both the reply (shell) and the kernel's idle status (iopub, after every output)
        # have come: the two channels share the websocket, in no fixed order.
        replied = idle = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(ws.recv())
            state = message.get("content", {}).get("execution_state")
            if message["msg_type"] == "status" and state in ("restarting", "dead"):
                raise KernelDied(f"the kernel is {state}")
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if kind == "stream":
                output.append(message["content"]["text"])
            elif kind == "error":
                raise StudentError(
                    "the kernel raised: " + "\n".join(message["content"]["traceback"])
                )
            elif kind == "execute_reply":
                replied = True
            elif kind == "status" and state == "idle":
                idle = True
            elif kind == "status" and state == "busy" and until_busy:
                return ""
            if replied and idle:
                return "".join(output)
        raise StudentError(f"no execute_reply in {timeout}s")
