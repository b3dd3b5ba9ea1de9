# The editjudge router image: slim, no vLLM inside (engines run from vllm/vllm-openai).
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY editjudge ./editjudge
COPY server ./server
COPY client ./client
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[server]"

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 EDITJUDGE_HOST=0.0.0.0 EDITJUDGE_PORT=8000
RUN useradd --create-home --uid 10001 editjudge
COPY --from=build /wheels /wheels
# The wheels built above are the pin: --no-index installs exactly those.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-index --find-links /wheels "editjudge[server]" \
    && rm -rf /wheels
USER 10001
WORKDIR /home/editjudge
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["python", "-m", "editjudge.server"]
