# tcpfo: build the native addons in one stage, run on a slim Debian with libpcap,
# libnetfilter_queue and iptables.
#
#   docker build -t tcpfo .
#   docker run --rm --network host --cap-add NET_ADMIN --cap-add NET_RAW \
#     -v /etc/tcpfo:/etc/tcpfo:ro -v /run/tcpfo:/run/tcpfo \
#     tcpfo primary -c /etc/tcpfo/tcpfo.yaml
#
# Host networking is required: the bridge works on the node's own interfaces and
# netfilter. NET_ADMIN (rules, NFQUEUE, addresses, sysctls, promiscuous mode)
# and NET_RAW (raw sockets, libpcap) are the only capabilities it needs; the
# sysctls it sets live under /proc/sys/net, writable with NET_ADMIN in the
# host's network namespace.

FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ clang llvm libbpf-dev libpcap-dev libnetfilter-queue-dev libmnl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json binding.gyp tsconfig.json ./
COPY native ./native
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpcap0.8 libnetfilter-queue1 libmnl0 libbpf1 iptables nftables iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/tcpfo
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/build/Release/tcpfo_nfqueue.node /src/build/Release/xlate.bpf.o ./build/Release/
COPY --from=build /src/dist ./dist
COPY config/tcpfo.example.yaml ./config/
ENTRYPOINT ["node", "/opt/tcpfo/dist/cli.js"]
CMD ["--help"]
