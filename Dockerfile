# One image for every Switchboard service; the compose file picks the service
# with the command (`start --target=<service>`).
FROM node:20-bookworm-slim AS build
# a C compiler for the native addons built by npm ci (the media relay engine, services/media-proxy/native,
# and the SIP UDP send thread, libs/sip/native);
# the runtime stage gets the built addon, not the compiler
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN npm ci --omit=dev --no-audit --no-fund && rm -rf data

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production SWITCHBOARD_LOG_FORMAT=json SWITCHBOARD_DATA_DIR=/var/lib/switchboard
WORKDIR /app
COPY --from=build /app /app
RUN mkdir -p /var/lib/switchboard && chown node:node /var/lib/switchboard
USER node
ENTRYPOINT ["node", "bin/switchboard.js"]
CMD ["start", "--target=all"]
