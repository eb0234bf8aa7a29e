# syntax=docker/dockerfile:1
#
# Self-Healing Controller image: TypeScript compiled to JavaScript (tsconfig.build.json), run by
# Node 24 on a distroless base — no shell, no package manager, not root.
#
#   docker build -t self-healing-controller:0.1.0 .
#
# Pin the base images by digest in your CI (FROM image:tag@sha256:...) for reproducible builds.
# The build and prod-deps stages use Debian 12 (bookworm), the same release as the final
# distroless image, so anything compiled against the system libraries also runs there.

# --- build: all dependencies (TypeScript is a devDependency), then tsc emits dist/ ---------------
FROM node:24-bookworm-slim AS build
WORKDIR /app
# Manifests first: this layer, and `npm ci`, are cached until dependencies change.
COPY package.json package-lock.json .npmrc ./
# No dependency has an install script; refusing them keeps a compromised package from running
# code at build time.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN ./node_modules/.bin/tsc -p tsconfig.build.json \
 && node dist/cli.js --help > /dev/null

# --- prod-deps: runtime dependencies only -------------------------------------------------------
FROM node:24-bookworm-slim AS prod-deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# --- final: distroless Node 24, nonroot -----------------------------------------------------------
FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps
# Owned by root and not writable by the process: the app cannot modify itself (the Deployment
# also mounts the root filesystem read-only).
# package.json comes along for "type": "module": without it Node would load dist/*.js as CommonJS.
COPY package.json ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# 65532 is the image's `nonroot` user; numeric so Kubernetes can check runAsNonRoot.
USER 65532:65532
EXPOSE 8080
# Exec form: node is PID 1 and receives SIGTERM itself, so a leader hands back its Lease on stop.
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/cli.js"]
