# siprec-recorder in a container. Build: docker build -t siprec-recorder .
# Run (host networking: SIP and the RTP range need no port mapping; replace the addresses):
#   docker run -d --name recorder --network host \
#     -v /srv/recordings:/recordings \
#     -e SIPREC__SIP__ALLOWED_SOURCES=10.1.2.0/24 \
#     -e SIPREC__RTP__ADVERTISED_ADDRESS=10.1.1.5 \
#     --stop-timeout 300 siprec-recorder
# The process runs as user "recorder", uid/gid 10001: a bind-mounted /recordings must be
# writable by it (chown -R 10001:10001 /srv/recordings), or run with --user of the folder's
# owner. Without SIPREC__SIP__ALLOWED_SOURCES only loopback may send calls: every SBC gets 403
# (the recorder logs a warning at start). The portal (8080) and metrics (9160) listen on
# loopback only; to expose them set e.g. SIPREC__WEB__LISTEN=0.0.0.0:8080 and put TLS in
# front ([web] tls_certificate). See docs/operations.md.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/siprec-recorder

# Dependencies in their own layer, keyed on pyproject.toml and constraints.txt only: a code
# change does not reinstall them. A placeholder package lets pip resolve them now.
COPY pyproject.toml README.md constraints.txt ./
RUN mkdir siprec_recorder && touch siprec_recorder/__init__.py \
 && pip install --no-cache-dir --disable-pip-version-check -c constraints.txt ".[postgres]" \
 && pip uninstall -y -q siprec-recorder \
 && rm -rf siprec_recorder build *.egg-info

COPY siprec_recorder ./siprec_recorder
COPY config ./config
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps . \
 && rm -rf build *.egg-info

RUN groupadd --system --gid 10001 recorder \
 && useradd --system --uid 10001 --gid 10001 --home-dir /recordings --shell /usr/sbin/nologin recorder \
 && mkdir -p /recordings \
 && chown recorder:recorder /recordings
USER recorder

ENV SIPREC__STORAGE__RECORDINGS_DIR=/recordings \
    SIPREC__STORAGE__CREATE_RECORDINGS_DIR=false \
    SIPREC__SIP__LISTEN='["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]' \
    SIPREC__RTP__ADDRESS=0.0.0.0 \
    SIPREC__WEB__LISTEN=127.0.0.1:8080 \
    SIPREC__METRICS__LISTEN=127.0.0.1:9160 \
    PYTHONUNBUFFERED=1
VOLUME ["/recordings"]
EXPOSE 5060/udp 5060/tcp

# Healthy while the metrics endpoint answers (it is served by the recorder process itself).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; h = os.environ.get('SIPREC__METRICS__LISTEN', '127.0.0.1:9160').replace('0.0.0.0', '127.0.0.1'); urllib.request.urlopen(f'http://{h}/metrics', timeout=4)"]

# A stop must leave time to finalise live calls: docker stop --time 300 (see docs/operations.md).
STOPSIGNAL SIGTERM
ENTRYPOINT ["siprec-recorder"]
CMD ["serve", "--config", "config/recorder.toml"]
