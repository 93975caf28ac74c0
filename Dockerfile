# The stream worker and producer image: no torch (the `train` extra is not installed).
# The trainer and catalogue service image: `--build-arg EXTRAS="[train]"` (docker-compose.yml).
FROM python:3.11-slim
ARG EXTRAS=""
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamrec ./streamrec
COPY streams ./streams
COPY inference ./inference
COPY training ./training
RUN pip install --no-cache-dir ".${EXTRAS}" && pip install --no-cache-dir --no-deps recbole==1.2.1
ENV PYTHONUNBUFFERED=1
CMD ["streamrec", "worker"]
