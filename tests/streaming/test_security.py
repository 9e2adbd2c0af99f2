"""TLS/SASL settings mapped onto confluent-kafka and Faust/aiokafka, and a refused TLS handshake as one quick line.

The embedded broker (Tansu) has no TLS or SASL listener, so the handshake tests
point the real clients at a local TLS server with certificates made by `trustme`.
A wrong SASL password cannot be shown here without a SASL broker (the compose
profile `secure` has one); the mapping tables and the librdkafka error texts
below cover that path.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from streamer.settings import Settings
from streamer.streaming.kafka import BrokerUnavailable, consumer_config, ensure_topics, producer_config
from streamer.streaming.security import (
    KafkaSecurityError, OidcTokenProvider, connection_failure, faust_credentials, librdkafka_security,
    lost_connection, sasl_password, ssl_context,
)

trustme = pytest.importorskip("trustme")

SASL = {"kafka_sasl_username": "api-key", "kafka_sasl_password": "s3cret"}


@pytest.fixture()
def files(tmp_path) -> dict[str, Path]:
    """A real CA, a client certificate and key it signed, and a password file."""
    ca = trustme.CA()
    client = ca.issue_cert("streamer-client")
    paths = {name: tmp_path / name for name in ("ca.pem", "client.pem", "client.key", "password.txt")}
    ca.cert_pem.write_to_path(str(paths["ca.pem"]))
    client.cert_chain_pems[0].write_to_path(str(paths["client.pem"]))
    client.private_key_pem.write_to_path(str(paths["client.key"]))
    paths["password.txt"].write_text("from-file\n")
    return paths


def _settings(overrides: dict, files: dict[str, Path]) -> Settings:
    """Settings with "{ca.pem}"-style placeholders replaced by the fixture's files."""
    return Settings(**{key: files[value[1:-1]] if isinstance(value, str) and value.startswith("{") else value
                       for key, value in overrides.items()})


@pytest.mark.parametrize("overrides, expected", [
    ({}, {}),
    ({"kafka_security_protocol": "SSL"},
     {"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "https"}),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": "{ca.pem}", "kafka_ssl_cert_file": "{client.pem}",
      "kafka_ssl_key_file": "{client.key}", "kafka_ssl_key_password": "k", "kafka_ssl_check_hostname": False},
     {"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "none", "ssl.ca.location": "{ca.pem}",
      "ssl.certificate.location": "{client.pem}", "ssl.key.location": "{client.key}", "ssl.key.password": "k"}),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN", **SASL},
     {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN", "sasl.username": "api-key",
      "sasl.password": "s3cret"}),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN", **SASL},
     {"security.protocol": "SASL_SSL", "ssl.endpoint.identification.algorithm": "https", "sasl.mechanisms": "PLAIN",
      "sasl.username": "api-key", "sasl.password": "s3cret"}),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-256", **SASL,
      "kafka_ssl_ca_file": "{ca.pem}"},
     {"security.protocol": "SASL_SSL", "ssl.endpoint.identification.algorithm": "https", "ssl.ca.location": "{ca.pem}",
      "sasl.mechanisms": "SCRAM-SHA-256", "sasl.username": "api-key", "sasl.password": "s3cret"}),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": "svc",
      "kafka_sasl_password_file": "{password.txt}"},
     {"security.protocol": "SASL_SSL", "ssl.endpoint.identification.algorithm": "https",
      "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "svc", "sasl.password": "from-file"}),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER", "kafka_sasl_username": "client-id",
      "kafka_sasl_password": "client-secret", "kafka_sasl_oauth_token_url": "https://idp.example/token",
      "kafka_sasl_oauth_scope": "kafka"},
     {"security.protocol": "SASL_SSL", "ssl.endpoint.identification.algorithm": "https",
      "sasl.mechanisms": "OAUTHBEARER", "sasl.oauthbearer.method": "oidc", "sasl.oauthbearer.client.id": "client-id",
      "sasl.oauthbearer.client.secret": "client-secret",
      "sasl.oauthbearer.token.endpoint.url": "https://idp.example/token", "sasl.oauthbearer.scope": "kafka"}),
])
def test_librdkafka_keys_for_each_protocol_and_mechanism(files, overrides, expected):
    from confluent_kafka import Producer

    settings = _settings(overrides, files)
    expected = {key: str(files[value[1:-1]]) if value.startswith("{") else value for key, value in expected.items()}
    assert librdkafka_security(settings) == expected
    for config in (producer_config(settings), consumer_config(settings, "g")):  # every client gets the same keys
        assert {key: config[key] for key in expected} == expected
    if "ssl.key.password" not in expected:  # librdkafka itself takes the keys (the test key has no password)
        Producer(producer_config(settings, **{"bootstrap.servers": "127.0.0.1:1"})).flush(0)


@pytest.mark.parametrize("overrides, kind, protocol, mechanism, username, password", [
    ({}, None, None, None, None, None),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": "{ca.pem}"}, "SSLCredentials", "SSL", None, None, None),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "SCRAM-SHA-256", **SASL},
     "SASLCredentials", "SASL_PLAINTEXT", "SCRAM-SHA-256", "api-key", "s3cret"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN", **SASL},
     "SASLCredentials", "SASL_SSL", "PLAIN", "api-key", "s3cret"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": "svc",
      "kafka_sasl_password_file": "{password.txt}", "kafka_ssl_ca_file": "{ca.pem}"},
     "SASLCredentials", "SASL_SSL", "SCRAM-SHA-512", "svc", "from-file"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER", "kafka_sasl_username": "id",
      "kafka_sasl_password": "secret", "kafka_sasl_oauth_token_url": "https://idp.example/token"},
     "OAuthCredentials", "SASL_SSL", "OAUTHBEARER", None, None),
])
def test_faust_credentials_reach_aiokafka_as_its_own_arguments(files, overrides, kind, protocol, mechanism, username,
                                                              password):
    """Through Faust's own credentials_to_aiokafka_auth, the function its consumers and producers call."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    credentials = faust_credentials(_settings(overrides, files))
    assert (type(credentials).__name__ if credentials else None) == kind
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == (protocol or "PLAINTEXT")
    assert (auth.get("sasl_mechanism"), auth.get("sasl_plain_username"), auth.get("sasl_plain_password")) == (
        mechanism, username, password)
    assert isinstance(auth.get("ssl_context"), ssl.SSLContext) == (protocol in ("SSL", "SASL_SSL"))
    if mechanism == "OAUTHBEARER":
        from aiokafka.abc import AbstractTokenProvider

        assert isinstance(auth["sasl_oauth_token_provider"], AbstractTokenProvider)


@pytest.mark.parametrize("check_hostname", [True, False])
def test_ssl_context_loads_the_ca_and_client_certificate(files, check_hostname):
    context = ssl_context(Settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=files["ca.pem"],
                                   kafka_ssl_cert_file=files["client.pem"], kafka_ssl_key_file=files["client.key"],
                                   kafka_ssl_check_hostname=check_hostname))
    assert context.check_hostname is check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert [cert["subject"] for cert in context.get_ca_certs()] != []


@pytest.mark.parametrize("content, expected", [
    ("from-file\n", "from-file"),
    ("from-file\r\n", "from-file"),
    ("  spaces kept  ", "  spaces kept  "),
    ("", KafkaSecurityError),
])
def test_password_file_is_read_when_a_client_starts(tmp_path, content, expected):
    path = tmp_path / "password"
    path.write_text("placeholder")
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u",
                        kafka_sasl_password_file=path)
    path.write_bytes(content.encode())  # rotated after start: the next client reads the new value
    if expected is KafkaSecurityError:
        with pytest.raises(KafkaSecurityError, match=f"kafka_sasl_password_file: {path} is empty"):
            sasl_password(settings)
    else:
        assert sasl_password(settings) == expected


@pytest.mark.parametrize("overrides, message", [
    ({"kafka_security_protocol": "SASL_SSL", **SASL}, "kafka_security_protocol SASL_SSL needs kafka_sasl_mechanism"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN"},
     "kafka_sasl_mechanism PLAIN needs kafka_sasl_username and kafka_sasl_password"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "u"},
     "needs kafka_sasl_username and kafka_sasl_password"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN", **SASL,
      "kafka_sasl_password_file": "{password.txt}"}, "set kafka_sasl_password or kafka_sasl_password_file, not both"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER", **SASL},
     "OAUTHBEARER needs kafka_sasl_oauth_token_url"),
    ({"kafka_sasl_mechanism": "PLAIN", **SASL}, "kafka_sasl_mechanism is set but kafka_security_protocol is PLAINTEXT"),
    ({"kafka_ssl_ca_file": "{ca.pem}"}, "kafka_ssl_ca_file is set but kafka_security_protocol is PLAINTEXT"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN", **SASL,
      "kafka_ssl_ca_file": "{ca.pem}"}, "kafka_ssl_ca_file is set but kafka_security_protocol is SASL_PLAINTEXT"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "{client.pem}"},
     "kafka_ssl_cert_file and kafka_ssl_key_file go together"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": Path("/nowhere/ca.pem")},
     "kafka_ssl_ca_file: no such file /nowhere/ca.pem"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "u",
      "kafka_sasl_password_file": Path("/nowhere/pw")}, "kafka_sasl_password_file: no such file /nowhere/pw"),
    ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI", **SASL}, "kafka_sasl_mechanism"),
])
def test_settings_refuse_combinations_a_client_would_fail_on(files, overrides, message):
    with pytest.raises(ValidationError, match=message) as caught:
        _settings(overrides, files)
    assert "s3cret" not in str(caught.value)  # errors never echo a secret


def test_secrets_reach_a_child_process_through_to_env(monkeypatch, files):
    """`streamer dev` starts the worker with these variables: the real password, not pydantic's '**********'."""
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512", **SASL,
                        kafka_ssl_ca_file=files["ca.pem"], kafka_ssl_check_hostname=False)
    for name in Settings.model_fields:
        monkeypatch.delenv(f"STREAMER_{name.upper()}", raising=False)
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    child = Settings()
    assert child == settings and librdkafka_security(child) == librdkafka_security(settings)
    assert "s3cret" not in repr(settings)


TLS_FAILED = ("ssl://localhost:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify "
              "failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured "
              "or root CA certificates are installed (install ca-certificates package) (after 2ms in state "
              "SSL_HANDSHAKE)")


@pytest.mark.parametrize("code, text, expected", [
    ("_SSL", TLS_FAILED, ("localhost:9093", "SSL handshake failed: certificate verify failed (check kafka_ssl_ca")),
    ("_TRANSPORT", "ssl://b-1.msk.example:9096/1: error:0A000086:SSL routines::certificate verify failed "
                   "(after 1ms in state SSL_HANDSHAKE)", ("b-1.msk.example:9096", "SSL handshake failed: certificate")),
    ("_SSL", "ssl://k:9093/bootstrap: SSL handshake failed: error:0A00010B:SSL routines::wrong version number "
             "(after 0ms in state SSL_HANDSHAKE)", ("k:9093", "SSL handshake failed: wrong version number (check "
                                                              "kafka_security_protocol")),
    ("_AUTHENTICATION", "sasl_ssl://kafka:9093/bootstrap: SASL authentication error: Authentication failed during "
                        "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 303ms in "
                        "state AUTH_REQ, 4 identical error(s) suppressed)",
     ("kafka:9093", "SASL authentication failed: wrong username or password")),
    ("_AUTHENTICATION", "sasl_ssl://pkc-1.confluent.cloud:9092/bootstrap: SASL authentication error: Authentication "
                        "failed: Invalid username or password (after 5110ms in state AUTH_REQ)",
     ("pkc-1.confluent.cloud:9092", "SASL authentication failed: wrong username or password")),
    ("_AUTHENTICATION", "sasl_plaintext://k:9092/bootstrap: SASL authentication error: Unsupported SASL mechanism: "
                        "broker's supported mechanisms: PLAIN (after 1ms in state AUTH_HANDSHAKE)",
     ("k:9092", "SASL authentication failed: Unsupported SASL mechanism: broker's supported mechanisms: PLAIN "
                "(check kafka_sasl_mechanism")),
    ("_TRANSPORT", "localhost:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in "
                   "state CONNECT)", None),
    ("_ALL_BROKERS_DOWN", "1/1 brokers are down", None),
])
def test_which_librdkafka_errors_are_fatal_and_how_they_read(code, text, expected):
    failure = connection_failure(code, text)
    if expected is None:
        assert failure is None
    else:
        assert failure[0] == expected[0] and failure[1].startswith(expected[1]), failure


def test_a_plaintext_client_at_a_tls_listener_is_told_which_setting():
    text = ("localhost:9093/bootstrap: Disconnected while requesting ApiVersion: might be caused by incorrect "
            "security.protocol configuration (connecting to a SSL listener?) or broker version is < 0.10 (see "
            "api.version.request) (after 3ms in state APIVERSION_QUERY)")
    assert lost_connection(text) == ("localhost:9093", "Disconnected while requesting ApiVersion: might be caused by "
                                     "incorrect security.protocol configuration (connecting to a SSL listener?) "
                                     "(check kafka_security_protocol)")


@pytest.mark.parametrize("status, body, expected", [
    (200, {"access_token": "tok-1", "token_type": "bearer", "expires_in": 3600}, "tok-1"),
    (401, {"error": "invalid_client"}, "answered 401 (invalid_client) without an access_token"),
])
def test_oidc_token_provider_uses_the_client_credentials_grant(status, body, expected):
    """A real HTTP token endpoint on localhost; a good token is fetched once and reused."""
    from aiohttp import web

    requests: list[tuple[str | None, dict]] = []

    async def token_endpoint(request):
        requests.append((request.headers.get("Authorization"), dict(await request.post())))
        return web.json_response(body, status=status)

    async def scenario():
        app = web.Application()
        app.router.add_post("/token", token_endpoint)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        provider = OidcTokenProvider(f"http://127.0.0.1:{port}/token", "client-id", "client-secret", scope="kafka")
        try:
            return [await provider.token(), await provider.token()]
        except KafkaSecurityError as err:
            return str(err)
        finally:
            await runner.cleanup()

    outcome = asyncio.run(scenario())
    import base64

    basic = "Basic " + base64.b64encode(b"client-id:client-secret").decode()
    assert requests[0] == (basic, {"grant_type": "client_credentials", "scope": "kafka"})
    if status == 200:
        assert outcome == [expected, expected] and len(requests) == 1
    else:
        assert expected in outcome and outcome.startswith("OAUTHBEARER: http://127.0.0.1:")


class TlsListener:
    """A TLS server on localhost that completes handshakes and then hangs up (no Kafka behind it)."""

    def __init__(self, ca, hostnames: tuple[str, ...]):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(*hostnames).configure_cert(self.context)
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.handshakes = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            connection.settimeout(2)
            try:
                with self.context.wrap_socket(connection, server_side=True):
                    self.handshakes += 1
            except (OSError, ssl.SSLError):
                connection.close()

    def close(self) -> None:
        self.socket.close()


@pytest.fixture()
def tls_listener():
    ca = trustme.CA()
    listeners: list[TlsListener] = []

    def start(hostnames=("localhost", "127.0.0.1")) -> tuple[TlsListener, object]:
        listeners.append(TlsListener(ca, hostnames))
        return listeners[-1], ca

    yield start
    for listener in listeners:
        listener.close()


@pytest.mark.integration
@pytest.mark.parametrize("client, server_names, expected", [
    ("other CA", ("localhost",), "SSL handshake failed: certificate verify failed (check kafka_ssl_ca_file"),
    ("right CA", ("kafka.example",), "SSL handshake failed: certificate verify failed (check kafka_ssl_ca_file"),
    ("plaintext", ("localhost",), "(check kafka_security_protocol"),
])
def test_a_refused_handshake_is_one_line_naming_the_broker_within_seconds(tmp_path, tls_listener, client,
                                                                           server_names, expected):
    """ensure_topics, run before every worker and command starts, fails fast where librdkafka would retry forever."""
    listener, server_ca = tls_listener(server_names)
    ca_file = tmp_path / "ca.pem"
    (server_ca if client == "right CA" else trustme.CA()).cert_pem.write_to_path(str(ca_file))
    tls = {} if client == "plaintext" else {"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": ca_file}
    settings = Settings(broker_url=f"kafka://localhost:{listener.port}", **tls)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        ensure_topics(settings, ["never-created"], timeout_s=30)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert message.startswith(f"cannot connect to broker localhost:{listener.port}: ") and expected in message
    assert "\n" not in message and elapsed < 5, (elapsed, message)


@pytest.mark.integration
def test_hostname_check_off_accepts_a_certificate_for_another_name(tmp_path, tls_listener):
    """The same certificate as above passes the handshake once kafka_ssl_check_hostname is false (librdkafka's
    ssl.endpoint.identification.algorithm=none); the listener then hangs up, which is not a certificate error."""
    listener, server_ca = tls_listener(("kafka.example",))
    ca_file = tmp_path / "ca.pem"
    server_ca.cert_pem.write_to_path(str(ca_file))
    settings = Settings(broker_url=f"kafka://localhost:{listener.port}", kafka_security_protocol="SSL",
                        kafka_ssl_ca_file=ca_file, kafka_ssl_check_hostname=False)
    with pytest.raises(BrokerUnavailable) as caught:
        ensure_topics(settings, ["never-created"], timeout_s=5)
    assert "certificate" not in str(caught.value) and listener.handshakes >= 1


@pytest.mark.integration
@pytest.mark.parametrize("client_ca, check_hostname, server_names, accepted", [
    ("right", True, ("localhost",), True),
    ("other", True, ("localhost",), False),
    ("right", True, ("kafka.example",), False),
    ("right", False, ("kafka.example",), True),
])
def test_faust_ssl_context_verifies_the_broker_like_librdkafka(tmp_path, tls_listener, client_ca, check_hostname,
                                                              server_names, accepted):
    """The context aiokafka gets, in a real handshake with the listener (what aiokafka's connect does)."""
    listener, server_ca = tls_listener(server_names)
    ca_file = tmp_path / "ca.pem"
    (server_ca if client_ca == "right" else trustme.CA()).cert_pem.write_to_path(str(ca_file))
    context = ssl_context(Settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=ca_file,
                                   kafka_ssl_check_hostname=check_hostname))

    async def handshake() -> bool:
        try:
            _, writer = await asyncio.open_connection("localhost", listener.port, ssl=context,
                                                      server_hostname="localhost")
        except ssl.SSLCertVerificationError:
            return False
        writer.close()
        return True

    assert asyncio.run(handshake()) is accepted
