"""docker-compose.yml and Dockerfile, checked statically (no Docker engine on these machines)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from streamer.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SETTING_ENV = {f"STREAMER_{name.upper()}": name for name in Settings.model_fields}
DEFAULT = re.compile(r"^\$\{(\w+):-([^}]*)\}$")


def test_kafka_is_the_official_image_in_kraft_mode_on_one_node():
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert not any("zookeeper" in str(service).lower() for service in SERVICES.values())


@pytest.mark.parametrize("service", ["topics", "worker", "review", "kafka-secure-setup", "worker-secure"])
def test_environment_names_are_settings_and_defaults_agree(service):
    env = SERVICES[service]["environment"]
    unknown = sorted(name for name in env if name.startswith("STREAMER_") and name not in SETTING_ENV)
    assert not unknown, f"not a Settings field: {unknown}"
    defaults = Settings()
    for name, value in env.items():
        if isinstance(value, str) and (m := DEFAULT.match(value)):
            assert m.group(1) == name
            assert m.group(2) == str(getattr(defaults, SETTING_ENV[name])), name


def test_worker_reaches_kafka_on_its_advertised_internal_listener():
    url = SERVICES["worker"]["environment"]["STREAMER_BROKER_URL"]
    advertised = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert url.removeprefix("kafka://") in {entry.split("://")[1] for entry in advertised.split(",")}


def test_topics_service_creates_every_pipeline_topic_before_workers_start():
    script = SERVICES["topics"]["command"][0]
    for name in ("STREAMER_INPUT_TOPIC", "STREAMER_PARSED_TOPIC", "STREAMER_REVIEW_TOPIC", "STREAMER_DEADLETTER_TOPIC",
                 "STREAMER_NONTRADE_TOPIC", "STREAMER_CORRECTIONS_TOPIC", "STREAMER_REVIEW_STATE_TOPIC"):
        assert f"$${name}" in script and name in SERVICES["topics"]["environment"]
    assert "--if-not-exists" in script
    assert SERVICES["worker"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_the_review_state_topic_is_one_compacted_partition():
    script = SERVICES["topics"]["command"][0]
    line = next(line for line in script.splitlines() if "$$STREAMER_REVIEW_STATE_TOPIC" in line
                or "STREAMER_REVIEW_STATE_TOPIC\"" in line)
    created = script[script.index(line):]
    assert "--partitions 1" in created and "--config cleanup.policy=compact" in created


def test_the_review_desk_listens_beyond_loopback_only_with_a_reviewers_file():
    from streamer.review import DeskRefused, reviewers_for

    review = SERVICES["review"]
    env = review["environment"]
    assert review["command"] == ["review"] and env["STREAMER_REVIEW_HOST"] == "0.0.0.0"
    mount = next(volume for volume in review["volumes"] if volume.endswith(":/config:ro"))
    assert env["STREAMER_REVIEW_USERS_PATH"].startswith(mount.rsplit(":", 2)[1] + "/")
    assert env["STREAMER_BROKER_URL"] == SERVICES["worker"]["environment"]["STREAMER_BROKER_URL"]
    with pytest.raises(DeskRefused, match="loopback only"):  # what the desk would do without the file
        reviewers_for(Settings(review_host=env["STREAMER_REVIEW_HOST"]))


def test_worker_is_built_here_with_the_model_mounted_read_only():
    worker = SERVICES["worker"]
    assert worker["build"] == "." and worker["command"] == ["worker"]
    assert any(volume.endswith(":/models:ro") for volume in worker["volumes"])
    assert "STREAMER_MODEL_PATH" in worker["environment"]


def _pip_installs(text: str) -> list[list[str]]:
    """`pip install` commands of a text, as words without options (`--no-cache-dir` and the like)."""
    found = []
    for line in text.splitlines():
        line = line.strip().removeprefix("RUN ").removeprefix("$ ")
        if re.match(r"^(python -m )?pip install ", line):
            words = shlex.split(line.split("&&")[0])
            found.append([w for w in words[words.index("install") + 1:] if not w.startswith("-")])
    return found


def test_dockerfile_installs_the_package_as_the_docs_say():
    docker = _pip_installs(DOCKERFILE)
    assert docker == [["."]]
    docs = [ROOT / "docs" / "streaming.md"] + [p for p in [ROOT / "README.md"] if p.is_file()]
    for doc in docs:
        assert ["."] in _pip_installs(doc.read_text()), f"{doc.name} does not show `pip install .`"


def test_dockerfile_copies_what_pip_install_needs_and_runs_the_worker():
    copied = " ".join(line for line in DOCKERFILE.splitlines() if line.startswith("COPY"))
    for needed in ("pyproject.toml", "README.md", "schemas/", "streamer/"):
        assert needed in copied
    assert 'ENTRYPOINT ["streamer"]' in DOCKERFILE and 'CMD ["worker"]' in DOCKERFILE
    assert "STREAMER_WEB_HOST=0.0.0.0" in DOCKERFILE


def test_the_image_builds_llama_cpp_for_any_x86_64_server_not_for_the_build_host():
    """A native build on an AMX or AVX-512 build host would die with SIGILL on other hosts."""
    [default] = re.findall(r'^ARG CMAKE_ARGS="([^"]*)"', DOCKERFILE, flags=re.M)
    flags = dict(flag.removeprefix("-D").split("=", 1) for flag in shlex.split(default))
    assert flags["GGML_NATIVE"] == "OFF" and flags["GGML_AVX2"] == "ON"
    assert not [name for name, value in flags.items() if ("AMX" in name or "AVX512" in name) and value == "ON"]


def test_the_worker_serves_ingest_beyond_loopback_only_with_credentials():
    from streamer.ingest.auth import IngestCredentials, ingest_refusal

    worker = SERVICES["worker"]
    env = worker["environment"]
    assert env["STREAMER_WEB_HOST"] == "0.0.0.0"
    mount = next(volume for volume in worker["volumes"] if volume.endswith(":/config:ro"))
    assert env["STREAMER_INGEST_TOKENS_FILE"].startswith(mount.rsplit(":", 2)[1] + "/")
    # what the worker would do without the tokens file
    refusal = ingest_refusal(Settings(web_host=env["STREAMER_WEB_HOST"]), IngestCredentials())
    assert refusal and "STREAMER_INGEST_TOKENS_FILE" in refusal and "0.0.0.0" in refusal


# --- profile `secure`: Kafka with a SASL_SSL listener, certificates from docs/deploy/make-certs.sh -------------------
SECURE = {name for name, service in SERVICES.items() if "secure" in service.get("profiles", [])}


def test_the_secure_profile_leaves_the_default_services_as_they_are():
    assert SECURE == {"kafka-secure", "kafka-secure-setup", "worker-secure"}
    assert all("profiles" not in SERVICES[name] for name in ("kafka", "topics", "worker", "review"))
    assert SERVICES["kafka-secure"]["image"] == SERVICES["kafka"]["image"]


def test_the_secure_worker_signs_in_on_a_sasl_ssl_listener_the_broker_advertises():
    kafka, env = SERVICES["kafka-secure"]["environment"], SERVICES["worker-secure"]["environment"]
    protocols = dict(entry.split(":") for entry in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    advertised = dict(entry.split("://") for entry in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    listener = next(name for name, address in advertised.items() if f"kafka://{address}" == env["STREAMER_BROKER_URL"])
    assert protocols[listener] == env["STREAMER_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["STREAMER_KAFKA_SASL_MECHANISM"] in kafka["KAFKA_SASL_ENABLED_MECHANISMS"].split(",")
    assert "SSL://" not in kafka["KAFKA_ADVERTISED_LISTENERS"]  # else the image's start script wants JKS files
    assert "STREAMER_KAFKA_SASL_PASSWORD" not in env and env["STREAMER_KAFKA_SASL_PASSWORD_FILE"].startswith("/certs/")
    assert "SCRAM-SHA-512=" in SERVICES["kafka-secure-setup"]["command"][0]


def _mounts(service: str) -> dict[str, str]:
    """Container path -> host path (relative to the repository) of a service's bind mounts."""
    return {volume.split(":")[1]: volume.split(":")[0] for volume in SERVICES[service].get("volumes", [])}


@pytest.fixture(scope="module")
def made_certs(tmp_path_factory) -> Path:
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    out = tmp_path_factory.mktemp("certs")
    subprocess.run(["sh", str(ROOT / "docs/deploy/make-certs.sh"), str(out)], check=True, capture_output=True)
    return out


@pytest.mark.parametrize("service", sorted(SECURE))
def test_every_file_the_secure_profile_mounts_is_in_the_repo_or_made_by_the_script(service, made_certs):
    text = yaml.safe_dump(SERVICES[service])
    for container, host in _mounts(service).items():
        if host == "./docs/deploy/certs":  # git-ignored: docs/deploy/make-certs.sh writes it
            assert (ROOT / "docs/deploy/.gitignore").read_text().split() == ["certs/"]
            for name in re.findall(rf"{container}/([\w.-]+)", text):
                assert (made_certs / name).is_file(), name
        elif not host.startswith("${"):
            assert (ROOT / host).is_file(), host


def test_the_worker_settings_of_the_secure_profile_validate_and_trust_the_made_broker_certificate(made_certs):
    """The worker's env read as Settings (paths mapped to the made files); its TLS context accepts the broker's
    certificate for both names clients use, in a real handshake with the keystore the broker loads."""
    import asyncio
    import ssl

    from streamer.streaming.security import librdkafka_security, ssl_context

    env = {name: value for name, value in SERVICES["worker-secure"]["environment"].items()
           if name.startswith("STREAMER_KAFKA_")}
    settings = Settings(**{SETTING_ENV[name]: value.replace("/certs", str(made_certs)) for name, value in env.items()})
    assert librdkafka_security(settings)["sasl.password"] == (made_certs / "kafka-password.txt").read_text().strip()
    broker = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    keystore = str(made_certs / "broker.keystore.pem")
    broker.load_cert_chain(keystore, keystore, password=(made_certs / "broker-key-password.txt").read_text().strip())

    async def handshake(server_hostname: str) -> bool:
        server = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0, ssl=broker)
        port = server.sockets[0].getsockname()[1]
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_context(settings),
                                                      server_hostname=server_hostname)
            writer.close()
            return True
        except ssl.SSLCertVerificationError:
            return False
        finally:
            server.close()

    assert [asyncio.run(handshake(name)) for name in ("localhost", "kafka-secure", "elsewhere")] == [True, True, False]



# -- profile `monitoring`: Prometheus and Grafana ----------------------------------------------------------------

MONITORING = {name: service for name, service in SERVICES.items() if "monitoring" in service.get("profiles", [])}


def _host_files(service: str) -> dict[str, Path]:
    """A service's bind mounts of repository files: {path in the container: path here}."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith("./"):
            mounts[container] = ROOT / host
    return mounts


def test_monitoring_is_a_profile_so_the_default_services_are_unchanged():
    assert set(MONITORING) == {"prometheus", "grafana"}
    assert SERVICES["prometheus"]["image"].startswith("prom/prometheus:v3")  # reads exposition format 1.0.0
    assert not any("monitoring" in service.get("profiles", []) for name, service in SERVICES.items()
                   if name not in MONITORING)


@pytest.mark.parametrize("service", sorted(MONITORING))
def test_every_file_a_monitoring_service_mounts_is_in_the_repo(service):
    mounts = _host_files(service)
    assert mounts and all(path.is_file() for path in mounts.values()), mounts


def test_prometheus_scrapes_every_worker_replica_on_the_workers_web_port():
    from streamer.streaming.health import METRICS_PATH

    config = yaml.safe_load(_host_files("prometheus")["/etc/prometheus/prometheus.yml"].read_text())
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]
    [job] = config["scrape_configs"]
    [dns] = job["dns_sd_configs"]
    assert (job["metrics_path"], dns["names"], dns["type"]) == (METRICS_PATH, ["worker"], "A")
    worker_env = SERVICES["worker"]["environment"]
    web_port = int(worker_env.get("STREAMER_WEB_PORT") or Settings().web_port)
    assert dns["port"] == web_port
    assert all(mapping.rsplit(":", 1)[1] == str(web_port) for mapping in SERVICES["worker"]["ports"])
    assert worker_env["STREAMER_WEB_HOST"] == "0.0.0.0"  # reachable from the prometheus container


def test_the_grafana_dashboard_queries_only_metrics_the_workers_export():
    import json

    from streamer.streaming.metrics import WorkerMetrics
    from streamer.streaming.pipeline import Topics

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""], "info": ["_info"]}
    exported = {family.name + suffix for family in WorkerMetrics(Topics.from_settings(Settings())).registry.collect()
                for suffix in suffixes[family.type]}
    files = _host_files("grafana")
    datasource_uids = {source["uid"] for source in yaml.safe_load(
        files["/etc/grafana/provisioning/datasources/tradechat.yml"].read_text())["datasources"]}
    provider = yaml.safe_load(files["/etc/grafana/provisioning/dashboards/tradechat.yml"].read_text())["providers"][0]
    dashboards = [path for container, path in files.items() if container.startswith(provider["options"]["path"] + "/")]
    assert dashboards
    for path in dashboards:
        panels = json.loads(path.read_text())["panels"]
        queried = {name for panel in panels for target in panel["targets"]
                   for name in re.findall(r"\btradechat_\w+", target["expr"])}
        assert queried and queried <= exported, sorted(queried - exported)
        assert {panel["datasource"]["uid"] for panel in panels} <= datasource_uids
