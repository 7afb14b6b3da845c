# syntax=docker/dockerfile:1
# Build: compile TypeScript with the dev dependencies, then keep only what runs.
FROM node:24-bookworm-slim AS build
WORKDIR /app
# Dependencies first, so a source change reuses this layer. No install scripts: the only native addon
# (bufferutil) loads its prebuilt binary, or falls back to JavaScript where there is none (e.g. arm64),
# and there is no compiler in this image to build one. The lock lists every platform's packages.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts

# Run: Node, the compiled code and production dependencies only, as a non-root user (uid 1000).
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# `pico` on the PATH, so `docker exec <container> pico status cluster nodes` works too.
RUN chmod +x dist/bin/pico.js && ln -s /app/dist/bin/pico.js /usr/local/bin/pico
USER node
# proxy, upstream, admin, gossip (TCP and UDP)
EXPOSE 8000 8001 8002 8003 8003/udp
# The admin port's /health, with Node's fetch (the image has no curl). A server whose admin port is not
# 127.0.0.1:8002 over plain HTTP needs its own: docker run --health-cmd, or the probes of an orchestrator.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8002/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["pico"]
CMD ["server"]
