# One image for every Switchboard service; the compose file picks the service
# with the command (`start --target=<service>`).
FROM node:20-bookworm-slim AS build
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
