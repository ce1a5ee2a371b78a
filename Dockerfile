# s3tier as a container: `docker build -t s3tier .`, then
#   docker run -p 8080:8080 -v s3tier-cache:/var/cache/s3tier \
#     -e S3TIER_UPSTREAM=https://s3.us-east-1.amazonaws.com -e AWS_REGION=us-east-1 s3tier
# Every setting is an S3TIER_* variable (README: Settings) or a key of a YAML file named by
# S3TIER_CONFIG. docs/kubernetes.md covers the Helm chart built on this image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric uid/gid, so that Kubernetes can verify runAsNonRoot without resolving a name
# and the chart's securityContext can name the same ids.
RUN groupadd --system --gid 10001 s3tier \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/s3tier --create-home \
      --shell /usr/sbin/nologin s3tier

# The same pip steps as `make install`, minus the editable flag and the extras: [dev] (test and
# lint tools: pyarrow, awscli, mypy, ...) and [embedded] (moto's S3 server, with Flask and
# Werkzeug) have no place in the image, which always runs against a real upstream.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY tiering ./tiering
COPY config ./config
RUN pip install --upgrade pip \
 && pip install .

# The disk tier. Created here, owned by s3tier, so that a fresh named volume inherits the owner.
RUN mkdir -p /var/cache/s3tier && chown 10001:10001 /var/cache/s3tier
VOLUME /var/cache/s3tier

# Defaults chosen for a container, as environment rather than flags: flags outrank S3TIER_*
# variables and the YAML file, so baking `--host/--port` into CMD would make `-e S3TIER_PORT=...`
# and a mounted config file silently ineffective. 0.0.0.0 makes --auth default to sigv4.
ENV S3TIER_HOST=0.0.0.0 \
    S3TIER_PORT=8080 \
    S3TIER_DISK_DIR=/var/cache/s3tier
EXPOSE 8080

USER 10001:10001
WORKDIR /home/s3tier

# Liveness only (the process answers); readiness, which asks the upstream, is for orchestrators.
# The slim image has no curl, hence Python. /_s3tier/healthz stays open under --auth sigv4.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('S3TIER_PORT', '8080') + '/_s3tier/healthz', timeout=4)"]

ENTRYPOINT ["s3tier"]
CMD ["serve"]
