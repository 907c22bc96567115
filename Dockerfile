# siprec-recorder: build with `docker build -t siprec-recorder .`, run with
# `docker run --network host -v /srv/recordings:/recordings siprec-recorder`.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/siprec-recorder
COPY pyproject.toml README.md ./
COPY siprec_recorder ./siprec_recorder
COPY config ./config
RUN pip install --no-cache-dir .

RUN useradd --system --home /recordings recorder && mkdir -p /recordings && chown recorder /recordings
USER recorder
ENV SIPREC__STORAGE__RECORDINGS_DIR=/recordings \
    SIPREC__SIP__LISTEN='["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]' \
    SIPREC__RTP__ADDRESS=0.0.0.0 \
    SIPREC__WEB__LISTEN=0.0.0.0:8080 \
    SIPREC__METRICS__LISTEN=0.0.0.0:9160
VOLUME ["/recordings"]
EXPOSE 5060/udp 5060/tcp 8080/tcp 9160/tcp
ENTRYPOINT ["siprec-recorder"]
CMD ["serve", "--config", "config/recorder.toml"]
