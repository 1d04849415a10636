"""The front door (issue: nginx with TLS, and a real browser test): a hub behind the bundled nginx
(PROXY=nginx), driven by headless Chromium and checked for redirect, TLS versions, HSTS,
websockets and the login rate limit; and the printed location block in the host's own nginx,
with a kernel's websocket through it."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
import warnings

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from classhub.student import Browser
from tests.conftest import invoke

from .conftest import ARTIFACTS, Hub, engine_environ, free_port, new_checkout, read_passwords, sweep

ROSTER = "hub-admin admin\nann\nbob\neve\n"


@pytest.fixture(scope="module")
def front(hub: Hub, tmp_path_factory):
    """A hub of its own behind the bundled nginx (HTTPS and HTTP on free ports, self-signed)."""
    name = f"{hub.name}n"
    https, http = free_port(), free_port()
    paths = new_checkout(tmp_path_factory.mktemp("front") / "clone", name, free_port(), ROSTER)
    env = paths.root / ".env"
    env.write_text(env.read_text() + f"PROXY=nginx\nHTTPS_PORT={https}\nHTTP_PORT={http}\n")
    try:
        result = invoke(paths, "setup", env=engine_environ(), timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        yield name, https, http, paths, result.stdout
    finally:
        sweep(hub.client, name)


def test_setup_says_the_certificate_is_self_signed_and_publishes_no_hub_port(hub: Hub, front):
    name, https, _, paths, output = front
    assert "make a self-signed certificate" in output and "browsers" in output
    assert "https://" in output and f":{https}/{name}/" in output  # the URL students open
    assert hub.client.containers.get(name).attrs["HostConfig"]["PortBindings"] in ({}, None)
    assert (paths.secrets_dir / "tls" / "selfsigned.key").stat().st_mode & 0o777 == 0o600
    listed = invoke(paths, "hubs", env=engine_environ())
    row = next(line for line in listed.stdout.splitlines() if line.startswith(name + " "))
    assert "nginx on" in row and f":{https}" in row, listed.stdout


def test_http_redirects_and_https_sends_hsts(front):
    name, https, http, _, _ = front
    plain = requests.get(f"http://127.0.0.1:{http}/{name}/hub/login", allow_redirects=False)
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://127.0.0.1:{https}/{name}/hub/login"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        page = requests.get(f"https://127.0.0.1:{https}/{name}/hub/login", verify=False)
    assert page.status_code == 200 and "login" in page.text.lower()
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_tls_1_1_is_refused_and_1_2_accepted(front):
    _, https, _, _, _ = front
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # the client offers TLS 1.1; the server refuses
    with (
        socket.create_connection(("127.0.0.1", https), timeout=10) as raw,
        pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"),
    ):
        context.wrap_socket(raw)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", https), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        assert tls.version() == "TLSv1.2"


def test_a_kernels_websocket_works_through_the_bundled_nginx(front):
    name, https, _, paths, _ = front
    bob = Browser(f"https://127.0.0.1:{https}/{name}/", "bob")
    assert bob.login(read_passwords(paths)["bob"]).status_code == 302
    bob.start()
    bob.open_lab()
    assert bob.run("print(sum(range(101)))") == "5050\n"
    bob.stop()


def test_the_eleventh_wrong_password_gets_429_and_another_address_still_logs_in(front):
    name, https, _, paths, _ = front
    url = f"https://127.0.0.1:{https}/{name}/"
    # eve's name: the hub's own limit by name (10 a minute) would stop later tests' logins as ann.
    guesser = Browser(url, "eve")  # from an address of its own: other tests log in meanwhile
    guesser.session.mount("https://", _SourceAddress("127.0.0.3"))
    answers = [guesser.login("wrong-password") for _ in range(11)]
    codes = [answer.status_code for answer in answers]
    assert codes[:10] == [403] * 10 and codes[10] == 429, codes
    assert "Too many wrong passwords" not in answers[10].text  # nginx's 429, not the hub's
    # The rate limit counts by address: ann, at her own address, logs in at once.
    ann = Browser(url, "ann")
    ann.session.mount("https://", _SourceAddress("127.0.0.2"))
    assert ann.login(read_passwords(paths)["ann"]).status_code == 302


class _SourceAddress(requests.adapters.HTTPAdapter):
    """Connect from another loopback address, as a second student's computer would."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def chromium(profile) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--ignore-certificate-errors", "--window-size=1400,900",
                f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(arg)
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(options=options, service=Service(driver))


def test_a_student_runs_a_notebook_in_chromium_through_the_bundled_nginx(front, tmp_path):
    name, https, _, paths, _ = front
    password = read_passwords(paths)["ann"]
    browser = chromium(tmp_path / "profile")
    wait = WebDriverWait(browser, 180)
    try:
        browser.get(f"https://127.0.0.1:{https}/{name}/")
        wait.until(ready.presence_of_element_located((By.ID, "username_input")))
        browser.find_element(By.ID, "username_input").send_keys("ann")
        browser.find_element(By.ID, "password_input").send_keys(password)
        browser.find_element(By.ID, "login_submit").click()
        # The hub starts ann's server and sends the browser on to JupyterLab.
        card = (By.CSS_SELECTOR, ".jp-LauncherCard[data-category='Notebook']")
        wait.until(ready.element_to_be_clickable(card)).click()
        editor = (By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell .cm-content")
        wait.until(ready.element_to_be_clickable(editor)).click()
        browser.switch_to.active_element.send_keys("print(2**20 + 7)")
        browser.switch_to.active_element.send_keys(Keys.SHIFT, Keys.ENTER)
        output = (By.CSS_SELECTOR, ".jp-NotebookPanel .jp-OutputArea-output")
        wait.until(ready.text_to_be_present_in_element(output, "1048583"))
        assert browser.current_url.startswith(f"https://127.0.0.1:{https}/{name}/user/ann/lab")
        ARTIFACTS.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "jupyterlab.png"))
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "jupyterlab-failure.png"))
        raise
    finally:
        browser.quit()


def test_the_printed_location_block_carries_a_kernels_websocket(hub: Hub, tmp_path):
    """`invoke nginx`, included in the host's own nginx as the README says, in front of the
    shared hub: a student logs in, starts a server and runs code over the websocket."""
    result = hub.invoke("nginx")
    assert result.returncode == 0, result.stderr
    listen = free_port()
    (tmp_path / "classhub.conf").write_text(result.stdout)
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid; error_log stderr; events {{}}\n"
        "http { access_log off; client_body_temp_path body; proxy_temp_path proxy;\n"
        f"  server {{ listen 127.0.0.1:{listen}; server_name _; include {tmp_path}/classhub.conf; }}\n"
        "}\n"
    )
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    command = [binary, "-p", str(tmp_path), "-c", str(conf)]
    checked = subprocess.run([*command, "-t"], capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stderr.decode()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", listen)) != 0:
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.1)
        student = Browser(f"http://127.0.0.1:{listen}/{hub.name}/", "student3")
        assert student.login(hub.passwords["student3"]).status_code == 302
        student.start()
        student.open_lab()
        assert student.run("print('through nginx', 6 * 7)") == "through nginx 42\n"
        student.stop()
    finally:
        subprocess.run([*command, "-s", "stop"], capture_output=True, timeout=30)


def test_the_administrators_certificate_replaces_the_self_signed_one(front, tmp_path):
    name, https, _, paths, _ = front
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=jupyter.example.edu", "-keyout", str(key), "-out", str(cert)],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    env = paths.root / ".env"
    env.write_text(env.read_text() + f"TLS_CERT={cert}\nTLS_KEY={key}\n")
    result = invoke(paths, "setup", env=engine_environ(), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"nginx {name}-nginx" in result.stdout and "replace" in result.stdout
    served = ssl.get_server_certificate(("127.0.0.1", https))
    assert served.strip() == cert.read_text().strip()


def test_down_stops_the_front_door_too_and_up_brings_it_back(hub: Hub, front):
    name, https, _, paths, _ = front
    down = invoke(paths, "down", env=engine_environ(), timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"stopping the front door {name}-nginx" in down.stdout
    assert hub.client.containers.get(f"{name}-nginx").status == "exited"
    with pytest.raises(OSError):  # nothing answers on the students' port
        socket.create_connection(("127.0.0.1", https), timeout=5).close()
    up = invoke(paths, "up", env=engine_environ(), timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        page = requests.get(f"https://127.0.0.1:{https}/{name}/hub/login", verify=False)
    assert page.status_code == 200
