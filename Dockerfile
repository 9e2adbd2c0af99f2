# tradechat-streamer worker image: `docker build -t tradechat-streamer .`
# The install step is the README's (`pip install .`); llama-cpp-python compiles
# llama.cpp here, so the image carries a C/C++ toolchain. For a GPU build pass
# e.g. `--build-arg CMAKE_ARGS=-DGGML_CUDA=on` on a CUDA base image (see docs/streaming.md).
FROM python:3.11-slim

ARG CMAKE_ARGS=""
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY streamer/ streamer/
RUN pip install --no-cache-dir .

RUN useradd --create-home streamer
USER streamer
WORKDIR /home/streamer

# Settings come from STREAMER_* variables (docker-compose.yml); the web server must listen beyond localhost.
ENV STREAMER_WEB_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
EXPOSE 6066
# SIGTERM (docker stop) is graceful: finish the message in flight, commit, leave the group.
STOPSIGNAL SIGTERM
ENTRYPOINT ["streamer"]
CMD ["worker"]
