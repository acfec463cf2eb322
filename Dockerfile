# Keybridge broker image. Node 24 runs the TypeScript sources directly (type stripping).
FROM node:24-bookworm-slim
ENV NODE_ENV=production
# glibc returns freed memory to the system (see README "Memory"): PGlite's start-up buffers
# would otherwise stay resident for the life of the process.
ENV MALLOC_TRIM_THRESHOLD_=131072 MALLOC_MMAP_THRESHOLD_=131072
# V8's compile cache for our modules (the TypeScript is stripped once, not at every start).
ENV NODE_COMPILE_CACHE=/tmp/keybridge-compile-cache
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY src ./src
COPY connectors ./connectors
COPY templates ./templates
COPY locales ./locales
COPY admin-console ./admin-console
COPY account-console ./account-console
COPY console-common ./console-common
COPY public ./public
COPY config ./config
COPY bin ./bin
USER node
EXPOSE 5556
ENV KEYBRIDGE_LISTEN=0.0.0.0:5556
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:5556/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# V8 heap settings (README "Memory"); override them with -e NODE_OPTIONS=...
ENV NODE_OPTIONS="--max-old-space-size=2048 --max-semi-space-size=16"
ENTRYPOINT ["node", "src/cli/main.ts"]
CMD ["serve"]
