"""TLS and SASL for every Kafka client, from the one set of `Settings.kafka_*` values.

confluent-kafka (librdkafka: produce, consume, replay, reprocess, the transactional worker, the review desk,
learn) and Faust (aiokafka: the at-least-once worker) spell the same choices differently; this is the only
place that turns the settings into either spelling, so the two cannot drift apart.

What the clients support, and so what the settings offer:
- protocols PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL: both clients;
- mechanisms PLAIN, SCRAM-SHA-256, SCRAM-SHA-512: both clients;
- OAUTHBEARER: librdkafka fetches tokens itself (sasl.oauthbearer.method=oidc, client-credentials grant);
  aiokafka only takes a token provider object, so `OidcTokenProvider` here does the same grant for Faust.
  Token-request extensions (e.g. Confluent Cloud's logicalCluster/identityPoolId) are not offered;
- GSSAPI (Kerberos) is left out: the confluent-kafka Linux wheels are built without it.

The embedded broker (Tansu, `streamer dev` and the tests) speaks PLAINTEXT only, the default, for which
nothing is added to any client's configuration.
"""

from __future__ import annotations

import base64
import re
import ssl
import time

from streamer.settings import Settings

__all__ = ["KafkaSecurityError", "OidcTokenProvider", "broker_and_reason", "connection_failure", "faust_credentials",
           "librdkafka_security", "lost_connection", "sasl_password", "ssl_context"]


class KafkaSecurityError(ValueError):
    """A secret or certificate file named in the settings cannot be used; the message names the setting."""


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def uses_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def sasl_password(settings: Settings) -> str | None:
    """The SASL password: read from `kafka_sasl_password_file` now (a rotated secret is picked up), else the value."""
    path = settings.kafka_sasl_password_file
    if path is None:
        return settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or err
        raise KafkaSecurityError(f"kafka_sasl_password_file: cannot read {path}: {reason}") from None
    password = text.removesuffix("\n").removesuffix("\r")
    if not password:
        raise KafkaSecurityError(f"kafka_sasl_password_file: {path} is empty")
    return password


def librdkafka_security(settings: Settings) -> dict[str, str]:
    """confluent-kafka configuration keys for the settings' protocol; none at all for PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    config = {"security.protocol": protocol}
    if uses_tls(settings):
        config["ssl.endpoint.identification.algorithm"] = "https" if settings.kafka_ssl_check_hostname else "none"
        optional = {"ssl.ca.location": settings.kafka_ssl_ca_file,
                    "ssl.certificate.location": settings.kafka_ssl_cert_file,
                    "ssl.key.location": settings.kafka_ssl_key_file}
        config.update({key: str(path) for key, path in optional.items() if path is not None})
        if settings.kafka_ssl_key_password is not None:
            config["ssl.key.password"] = settings.kafka_ssl_key_password.get_secret_value()
    if uses_sasl(settings):
        config["sasl.mechanisms"] = settings.kafka_sasl_mechanism
        if settings.kafka_sasl_mechanism == "OAUTHBEARER":
            config.update({"sasl.oauthbearer.method": "oidc",
                           "sasl.oauthbearer.client.id": settings.kafka_sasl_username,
                           "sasl.oauthbearer.client.secret": sasl_password(settings),
                           "sasl.oauthbearer.token.endpoint.url": settings.kafka_sasl_oauth_token_url})
            if settings.kafka_sasl_oauth_scope:
                config["sasl.oauthbearer.scope"] = settings.kafka_sasl_oauth_scope
        else:
            config.update({"sasl.username": settings.kafka_sasl_username, "sasl.password": sasl_password(settings)})
    return config


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context aiokafka connects with: CA file (else the system's CAs), client certificate, hostname check."""
    ca_file = settings.kafka_ssl_ca_file
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as err:
        raise KafkaSecurityError(f"kafka_ssl_ca_file: {ca_file} is not a PEM CA certificate: {err}") from None
    context.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_cert_file is not None:
        key_password = settings.kafka_ssl_key_password
        try:
            context.load_cert_chain(str(settings.kafka_ssl_cert_file), str(settings.kafka_ssl_key_file),
                                    password=key_password.get_secret_value() if key_password else None)
        except (OSError, ssl.SSLError) as err:
            raise KafkaSecurityError(f"kafka_ssl_cert_file: cannot load {settings.kafka_ssl_cert_file} with key "
                                     f"{settings.kafka_ssl_key_file}: {err}") from None
    return context


def faust_credentials(settings: Settings):
    """`faust.App(broker_credentials=...)` for the settings' protocol; None for PLAINTEXT (Faust's default)."""
    from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings) if uses_tls(settings) else None
    if protocol == "SSL":
        return SSLCredentials(context)
    if settings.kafka_sasl_mechanism == "OAUTHBEARER":  # Faust makes it SASL_SSL when given an ssl_context
        from aiokafka.abc import AbstractTokenProvider

        AbstractTokenProvider.register(OidcTokenProvider)  # aiokafka accepts only its subclasses
        return OAuthCredentials(oauth_cb=OidcTokenProvider.from_settings(settings), ssl_context=context)
    return SASLCredentials(username=settings.kafka_sasl_username, password=sasl_password(settings),
                           ssl_context=context, mechanism=settings.kafka_sasl_mechanism)


class OidcTokenProvider:
    """OAUTHBEARER tokens for aiokafka by the OIDC client-credentials grant, as librdkafka's `oidc` method fetches them.

    The client id and secret go in an HTTP Basic header (RFC 6749 2.3.1, as
    librdkafka sends them); a token is reused until a minute before it expires.
    Registered as an aiokafka `AbstractTokenProvider` when Faust credentials
    are built, so importing this module does not import aiokafka.
    """

    REFRESH_BEFORE_EXPIRY_S = 60.0

    def __init__(self, token_url: str, client_id: str, client_secret: str, scope: str | None = None,
                 timeout_s: float = 30.0):
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.timeout_s = timeout_s
        self._token: str | None = None
        self._expires_at = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcTokenProvider:
        return cls(settings.kafka_sasl_oauth_token_url, settings.kafka_sasl_username, sasl_password(settings),
                   settings.kafka_sasl_oauth_scope)

    async def token(self) -> str:
        if self._token is not None and time.monotonic() < self._expires_at:
            return self._token
        import aiohttp

        form = {"grant_type": "client_credentials", **({"scope": self.scope} if self.scope else {})}
        basic = base64.b64encode(f"{self.client_id}:{self._client_secret}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}"}
        try:
            async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as session,
                        session.post(self.token_url, data=form, headers=headers) as response):
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            reason = str(err) or type(err).__name__
            raise KafkaSecurityError(f"OAUTHBEARER: no token from {self.token_url}: {reason}") from None
        if status != 200 or not isinstance(body, dict) or not body.get("access_token"):
            detail = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
            raise KafkaSecurityError(f"OAUTHBEARER: {self.token_url} answered {status}"
                                     f"{f' ({detail})' if detail else ''} without an access_token")
        lifetime = float(body.get("expires_in") or 3600)
        self._token = body["access_token"]
        self._expires_at = time.monotonic() + max(0.0, lifetime - self.REFRESH_BEFORE_EXPIRY_S)
        return self._token


# librdkafka's error text: "<proto>://<host:port>/<broker id>: <reason> (after 2ms in state SSL_HANDSHAKE...)"
_LIBRDKAFKA_ERROR = re.compile(
    r"^(?:[a-z_]+://)?(?P<broker>[^/\s]+)/\S+: (?P<reason>.*?)(?: \(after \d+ms in state .*\))?$", re.DOTALL)
_OPENSSL_CODE = re.compile(r"error:[0-9A-Fa-f]+:[^:]*:[^:]*:")


def broker_and_reason(text: str) -> tuple[str, str]:
    """librdkafka's "ssl://host:9093/bootstrap: reason (after 5ms in state UP)" as ("host:9093", "reason")."""
    match = _LIBRDKAFKA_ERROR.match(text.strip())
    broker, reason = (match["broker"], match["reason"]) if match else ("?", text.strip())
    return broker, _OPENSSL_CODE.sub("", reason)


def lost_connection(text: str) -> tuple[str, str]:
    """(broker, cause) of a librdkafka transport error, naming the setting when the protocol looks wrong."""
    broker, reason = broker_and_reason(text)
    if "incorrect security.protocol" in reason:  # Kafka's answer to a plaintext client at a TLS listener
        reason = reason.split(" or broker version")[0] + " (check kafka_security_protocol)"
    elif "APIVERSION_QUERY" in text:  # hung up at the first request: another protocol expected
        reason += " at the first request (check kafka_security_protocol: is the listener TLS or SASL?)"
    return broker, reason


def connection_failure(code_name: str, text: str) -> tuple[str, str] | None:
    """(broker, cause with the setting to check) when a librdkafka error means retrying cannot help; else None.

    Certificate and sign-in failures are fatal; librdkafka would retry them
    forever. `code_name` is `KafkaError.name()` (`_SSL`, `_AUTHENTICATION`, ...).
    """
    broker, reason = broker_and_reason(text)
    if code_name == "_SSL" or "certificate verify failed" in reason:
        if "certificate verify failed" in reason:
            return broker, ("SSL handshake failed: certificate verify failed (check kafka_ssl_ca_file, and "
                            "kafka_ssl_check_hostname when the certificate names another host)")
        return broker, f"{reason.split(': broker certificate')[0]} (check kafka_security_protocol and kafka_ssl_*)"
    if code_name == "_AUTHENTICATION":
        if re.search(r"invalid (credentials|username or password)|authentication failed", reason, re.IGNORECASE):
            return broker, ("SASL authentication failed: wrong username or password (check kafka_sasl_username, "
                            "kafka_sasl_password and kafka_sasl_mechanism)")
        reason = reason.removeprefix("SASL authentication error: ")
        return broker, f"SASL authentication failed: {reason} (check kafka_sasl_mechanism and kafka_sasl_username)"
    return None
