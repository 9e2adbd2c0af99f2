# tradechat-streamer worker image: `docker build -t tradechat-streamer .`
# The install step is the README's (`pip install .`); llama-cpp-python compiles
# llama.cpp here, so the image carries a C/C++ toolchain.
# Portable by default: llama.cpp is built for AVX2/FMA (every x86-64 server CPU
# since 2013), not for the build host (-march=native would carry the build
# host's AVX-512 or AMX into an image that then dies with "Illegal instruction"
# on another host). At run time `cpu_extra_buffers=auto` keeps weights off the
# AMX path on CPUs that have it, as outside the image. To build for the host,
# or for a GPU on a CUDA base image (see docs/streaming.md):
#   --build-arg CMAKE_ARGS=-DGGML_NATIVE=ON        --build-arg CMAKE_ARGS=-DGGML_CUDA=on
FROM python:3.11-slim

ARG CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
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

# The shipped adapter merged into the bundled model (Q8_0), built once here rather than in every container.
ENV STREAMER_MODEL_CACHE_DIR=/home/streamer/.cache/tradechat-streamer
RUN streamer parse "buy 1m cable" > /dev/null

# Settings come from STREAMER_* variables (docker-compose.yml); the web server must listen beyond localhost.
ENV STREAMER_WEB_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
EXPOSE 6066
# SIGTERM (docker stop) is graceful: finish the message in flight, commit, leave the group.
STOPSIGNAL SIGTERM
ENTRYPOINT ["streamer"]
CMD ["worker"]
