"""All settings in one typed place.

Every value can come from the environment (prefix `STREAMER_`, e.g.
`STREAMER_MODEL_PATH`, `STREAMER_BROKER_URL`; an empty variable, as compose
passes an unset one, means the default) or from CLI flags, which build a
`Settings` with overrides. Modules receive a `Settings`; none reads os.environ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CrossCheckScope = Literal["omissions", "all"]
CpuExtraBuffers = Literal["auto", "on", "off"]
AdapterMerge = Literal["off", "q4_0", "q4_1", "q5_0", "q8_0", "iq4_nl"]
KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMER_", extra="ignore", env_ignore_empty=True,
                                      hide_input_in_errors=True)  # errors never echo a secret

    # --- parser -----------------------------------------------------------
    model_path: Path | None = Field(default=None, description="GGUF model file; empty = the bundled SmolLM2-135M.")
    adapter_path: str | None = Field(
        default="bundled",
        description="GGUF LoRA adapter: a path, 'bundled' (the shipped adapter, when the model is the bundled one) or 'none'.",
    )
    adapter_merge: AdapterMerge = Field(
        default="q8_0",
        description="How the adapter is applied: merged into the weights and quantized to this type (built once "
                    "per machine, a few seconds, into model_cache_dir), or 'off' = llama.cpp's runtime LoRA (slower).",
    )
    model_cache_dir: Path | None = Field(
        default=None, description="Where merged models are kept; empty = $XDG_CACHE_HOME/tradechat-streamer.",
    )
    n_ctx: int = 2048
    n_threads: int | None = Field(default=None, description="CPU threads for llama.cpp; empty = all cores.")
    n_batch: int = 512
    n_gpu_layers: int = Field(default=0, description="Layers offloaded to the GPU; -1 = all.")
    cpu_extra_buffers: CpuExtraBuffers = Field(
        default="auto",
        description="llama.cpp's extra CPU weight buffer types (repacked and AMX layouts): 'auto' turns them off "
                    "on CPUs that report AMX, where llama.cpp's AMX path dies with SIGILL, and on elsewhere.",
    )
    max_tokens: int = Field(default=160, description="Cap on generated tokens per message.")
    batch_max_messages: int = Field(
        default=8, ge=1,
        description="Messages parsed together in one llama.cpp decode (workers take up to this many at a time).",
    )
    batch_max_wait_ms: int = Field(
        default=20, ge=0,
        description="How long a worker waits to fill a batch once it has a message; 0 = take what is there.",
    )
    max_draft_tokens: int = Field(
        default=16, ge=0,
        description="Jump-forward: tokens of the output template guessed after each step and checked by the model "
                    "in the same decode (only confirmed ones are kept, so outputs do not change); 0 = off.",
    )
    confidence_threshold: float = Field(
        default=0.6, ge=0.0, le=1.0,
        description="Below this a result goes to review (0.6: chosen on development data against a 10% review "
                    "budget; docs/evaluation.md, 'Review threshold').",
    )
    prompt_version: str | None = Field(default=None, description="Force a prompt version; empty = the adapter's, else few-shot.")
    limits_path: str = Field(
        default="default",
        description="Pre-trade limits (TOML): 'default' = the shipped streamer/limits.toml, a path, or 'none'. "
                    "A trade over a limit goes to review (limit_exceeded).",
    )
    rules_cross_check: bool = Field(
        default=True,
        description="Send a result to review when the rule-based parser reads a field differently (a second opinion, ~0.2 ms).",
    )
    cross_check_scope: CrossCheckScope = Field(
        default="omissions",
        description="Which disagreements go to review: 'omissions' (the rules find a value the model left empty; "
                    "precise) or 'all' (every field read differently; fewer silent errors, many more flags).",
    )
    cross_check_trust: float | None = Field(
        default=None, ge=0.0,
        description="A field the rules read differently still passes when the model's confidence in it is at least "
                    "this (fewer flags, more silent errors; measured in docs/evaluation.md); empty = every "
                    "disagreement in scope goes to review.",
    )
    second_opinion: str = Field(
        default="bundled",
        description="A second adapter that parses every message too; a field it reads differently goes to review "
                    "(models_disagree): 'bundled' = the shipped second adapter (on the bundled model only), a GGUF "
                    "LoRA path, or 'none'. Costs a second generation per message (docs/evaluation.md).",
    )
    registry_dir: Path | None = Field(
        default=None,
        description="Model registry directory: workers load its current version at start and swap to a newly "
                    "promoted one live; empty = the configured adapter.",
    )
    registry_poll_s: float = Field(default=5.0, gt=0, description="How often a worker reads the registry for a "
                                   "newly promoted version.")
    model_version: str | None = Field(
        default=None, description="The registry version a parser runs; stamped into provenance.",
    )

    # --- stream -----------------------------------------------------------
    broker_url: str = "kafka://localhost:9092"
    input_topic: str = "chat.raw"
    parsed_topic: str = "trades.parsed"
    review_topic: str = "trades.review"
    deadletter_topic: str = "chat.deadletter"
    nontrade_topic: str = Field(default="chat.nontrade", description="Messages the parser is sure hold no trade "
                                "(intent none), so the parsed topic carries trades only.")
    topic_partitions: int = 4
    group_id: str = "tradechat-streamer"
    max_message_bytes: int = Field(default=16384, description="Larger inputs are dead-lettered as oversize.")
    session_timeout_s: float = Field(default=30.0, description="Consumer session timeout; the dev profile lowers it.")
    rebalance_timeout_s: float = Field(default=60.0, description="Consumer rebalance timeout; keep it above one parse.")
    fetch_max_wait_ms: int = Field(
        default=100, ge=0,
        description="How long the broker may hold a fetch that finds no new record (Faust's fixed 1500 ms "
                    "added ~0.55 s per message on the embedded broker; Apache Kafka answers when data arrives).",
    )
    commit_interval_s: float = Field(default=1.0, description="How often acknowledged input offsets are committed.")
    publish_timeout_s: float = Field(default=60.0, description="Worker stops if an output is unacknowledged this long.")
    topic_replication_factor: int = Field(default=1, description="Replication of topics the worker creates.")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="exactly_once: outputs and input offsets commit in one Kafka transaction per batch "
                    "(read outputs with isolation.level=read_committed); no HTTP ingest in that mode.",
    )
    transaction_batch_size: int = Field(default=8, ge=1, description="Inputs per transaction (exactly_once).")
    transaction_timeout_s: float = Field(default=120.0, gt=0, description="Broker aborts a transaction left open this long.")
    transactional_id: str | None = Field(
        default=None, description="Kafka transactional.id of this worker; empty = <group_id>-<host>-<web_port>.",
    )
    max_parse_crashes: int = Field(
        default=2, ge=1,
        description="A message in flight each time the parser process died this many times is dead-lettered "
                    "as processing_crash; the worker starts a fresh parser process and goes on.",
    )
    parser_factory: str | None = Field(
        default=None,
        description="'module:function' building the workers' parser from Settings inside the parser process; "
                    "empty = the llama.cpp Parser. For stand-ins in tests.",
    )
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    data_dir: Path = Path(".streamer-data")

    # --- Kafka security (streamer/streaming/security.py maps these onto each client) ---------------------------
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        default="PLAINTEXT", description="How clients reach the brokers: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or "
                                         "SASL_SSL (SASL sign-in over TLS: what managed clusters use).",
    )
    kafka_sasl_mechanism: KafkaSaslMechanism | None = Field(
        default=None, description="SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (OIDC client "
                                  "credentials: username/password are the client id/secret).",
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name (API key; OIDC client id).")
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (API secret; OIDC client secret); or use kafka_sasl_password_file.",
    )
    kafka_sasl_password_file: Path | None = Field(
        default=None,
        description="A file holding the SASL password (read as each client starts; a trailing newline is dropped).",
    )
    kafka_sasl_oauth_token_url: str | None = Field(
        default=None, description="OAUTHBEARER: the OIDC token endpoint (client-credentials grant).",
    )
    kafka_sasl_oauth_scope: str | None = Field(default=None, description="OAUTHBEARER: scope to ask the token for.")
    kafka_ssl_ca_file: Path | None = Field(
        default=None, description="PEM CA certificate(s) the broker's certificate must chain to; empty = the system's.",
    )
    kafka_ssl_cert_file: Path | None = Field(default=None, description="PEM client certificate (mutual TLS).")
    kafka_ssl_key_file: Path | None = Field(default=None, description="PEM private key of kafka_ssl_cert_file.")
    kafka_ssl_key_password: SecretStr | None = Field(default=None, description="Password of an encrypted key file.")
    kafka_ssl_check_hostname: bool = Field(
        default=True, description="Check that the broker's certificate names the host connected to; false = any "
                                  "certificate the CA signed (e.g. brokers reached by IP).",
    )

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Settings:
        """Refuse combinations a client would ignore or fail on later, in one line naming the setting."""
        protocol = self.kafka_security_protocol
        sasl = protocol.startswith("SASL_")
        tls = protocol in ("SSL", "SASL_SSL")
        if sasl and self.kafka_sasl_mechanism is None:
            raise ValueError(f"kafka_security_protocol {protocol} needs kafka_sasl_mechanism "
                             "(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)")
        if not sasl:
            given = [name for name in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password",
                                       "kafka_sasl_password_file") if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{given[0]} is set but kafka_security_protocol is {protocol} "
                                 "(SASL needs SASL_SSL or SASL_PLAINTEXT)")
        if not tls:
            given = [name for name in ("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file",
                                       "kafka_ssl_key_password") if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{given[0]} is set but kafka_security_protocol is {protocol} "
                                 "(TLS needs SSL or SASL_SSL)")
        if self.kafka_sasl_password is not None and self.kafka_sasl_password_file is not None:
            raise ValueError("set kafka_sasl_password or kafka_sasl_password_file, not both")
        if sasl and (not self.kafka_sasl_username or (self.kafka_sasl_password is None
                                                      and self.kafka_sasl_password_file is None)):
            raise ValueError(f"kafka_sasl_mechanism {self.kafka_sasl_mechanism} needs kafka_sasl_username and "
                             "kafka_sasl_password (or kafka_sasl_password_file)")
        if self.kafka_sasl_mechanism == "OAUTHBEARER" and not self.kafka_sasl_oauth_token_url:
            raise ValueError("kafka_sasl_mechanism OAUTHBEARER needs kafka_sasl_oauth_token_url (the token endpoint)")
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError("kafka_ssl_cert_file and kafka_ssl_key_file go together (mutual TLS needs both)")
        for name in ("kafka_sasl_password_file", "kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file {path}")
        return self

    # --- HTTP ingest --------------------------------------------------------
    ingest_enabled: bool = Field(
        default=True,
        description="Serve POST /ingest on the worker's web server; false = no /ingest at all (e.g. a worker bound "
                    "to 0.0.0.0 for its other pages only).",
    )
    ingest_tokens_file: Path | None = Field(
        default=None,
        description="Bearer tokens allowed to POST /ingest: one per line, or a .toml file of [tokens] name = "
                    "\"token\" (or name = {token = \"...\", expires = 2027-01-01T00:00:00Z}) so logs name the client.",
    )
    ingest_token: SecretStr | None = Field(
        default=None, description="One bearer token allowed to POST /ingest (client name 'token').",
    )
    ingest_hmac_secret: SecretStr | None = Field(
        default=None,
        description="Key for signed webhooks: X-Signature: sha256=<hex HMAC-SHA256 of '<X-Timestamp>.<body>'>.",
    )
    ingest_hmac_secret_file: Path | None = Field(
        default=None, description="A file holding the signing key (instead of ingest_hmac_secret).",
    )
    ingest_max_skew_s: float = Field(
        default=300.0, gt=0, description="A signed request whose X-Timestamp is further than this from now is expired.",
    )
    ingest_max_body_bytes: int | None = Field(
        default=None, ge=1,
        description="Larger bodies get 413 before they are read; empty = max_message_bytes + 4096.",
    )
    ingest_rate_per_s: float = Field(
        default=20.0, ge=0,
        description="POST /ingest requests per second per client (token name, else peer address); 0 = no limit.",
    )
    ingest_burst: int = Field(default=100, ge=1, description="Requests a client may send at once before 429s.")

    # --- worker metrics and health (GET /metrics, /health, /ready on web_host:web_port) ---------------------------
    lag_refresh_s: float = Field(
        default=5.0, gt=0,
        description="How often a worker reads its input partitions' high watermarks and committed offsets for "
                    "tradechat_consumer_lag (the exactly-once worker: between batches).",
    )

    # --- review desk ------------------------------------------------------
    corrections_topic: str = Field(default="trades.corrections",
                                   description="Every review decision: the learning loop's input.")
    review_state_topic: str = Field(default="trades.review.state",
                                    description="The desks' claims and decisions (one partition, compacted).")
    review_group_id: str = Field(default="tradechat-review", description="The desk's consumer group on the review topic.")
    review_host: str = Field(default="127.0.0.1", description="Where the desk listens; not loopback needs reviewers.")
    review_port: int = 6070
    review_users_path: Path | None = Field(
        default=None,
        description="TOML of reviewers and their scrypt password hashes (`streamer review add-user`); empty = "
                    "sign in by name only, allowed on a loopback address only.",
    )
    review_secret: str | None = Field(
        default=None, description="Key signing session cookies; empty = random per start (sign-ins end with it).",
    )
    review_claim_ttl_s: float = Field(default=300.0, gt=0, description="An opened item stays one reviewer's this long.")

    def to_env(self) -> dict[str, str]:
        """These settings as the STREAMER_* variables a child process reads them back from (None left out)."""
        values = self.model_dump(mode="json")
        values.update({name: value.get_secret_value() for name, value in self if isinstance(value, SecretStr)})
        return {f"STREAMER_{name.upper()}": str(value) for name, value in values.items() if value is not None}

    @property
    def heartbeat_interval_s(self) -> float:
        """Consumer heartbeat: a third of the session timeout, at most 3 s (Kafka's own advice)."""
        return min(3.0, self.session_timeout_s / 3)
