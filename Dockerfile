# syntax=docker/dockerfile:1
# Build: compile TypeScript with the dev dependencies, then keep only what runs.
FROM node:20-bookworm-slim AS build
WORKDIR /app
# Dependencies first, so a source change reuses this layer. No install scripts: the only native addon
# (bufferutil) loads its prebuilt binary, or falls back to JavaScript where there is none (e.g. arm64),
# and there is no compiler in this image to build one.
COPY package.json package-lock.json ./
# npm install, not npm ci: the lock may lack other platforms' optional binaries (see .ci/run).
RUN npm install --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts

# Run: Node, the compiled code and production dependencies only, as a non-root user (uid 1000).
FROM node:20-bookworm-slim
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
ENTRYPOINT ["pico"]
CMD ["server"]
