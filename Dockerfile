# tcpfo: build the native parts (the NFQUEUE/ARP/capability addon, the tc BPF
# translation program, the npm cap and raw-socket addons) in one stage, run on
# a slim Debian with only their libraries and the netfilter/iproute2 tools.
#
#   docker build -t tcpfo .
#   docker run -d --name tcpfo --network host --init --restart on-failure --stop-timeout 20 \
#     --security-opt systempaths=unconfined \
#     --cap-add NET_ADMIN --cap-add NET_RAW --cap-add BPF --cap-add SYS_NICE --cap-add PERFMON \
#     -v /etc/tcpfo:/etc/tcpfo:ro -v /run/tcpfo:/run/tcpfo -v /sys/fs/bpf:/sys/fs/bpf \
#     tcpfo primary -c /etc/tcpfo/tcpfo.yaml          # "secondary" on the other node
#   docker exec tcpfo tcpfo status -c /etc/tcpfo/tcpfo.yaml
#   docker exec tcpfo tcpfo switchover -c /etc/tcpfo/tcpfo.yaml
#
# Host networking is required: the bridge works on the node's own interfaces,
# routing and netfilter. It needs NET_ADMIN (rules, NFQUEUE, addresses,
# sysctls under /proc/sys/net, promiscuous mode), NET_RAW (raw and packet
# sockets, libpcap), BPF (the primary's tc program; without it the primary
# translates through the queue), SYS_NICE (scheduling.nice) and PERFMON (the BPF
# verifier of kernels before 6.14 refuses the programs without it); after setup
# it drops all but the first three. Docker mounts /proc/sys read-only whatever
# the capabilities: systempaths=unconfined lets the bridge set its sysctls
# (only under --network host do they reach the node's own network). --init
# reaps the tools the bridge runs and passes SIGTERM on; the bridge's own stop
# (undoing its rules) takes up to 15 s, hence --stop-timeout 20 (Docker's
# default is 10). The host's bpffs (/sys/fs/bpf) holds the primary's pinned
# netfilter match (merge: kernel; without it, the queue releases a
# primary-only connection's segments). /run/tcpfo holds the control and
# command sockets, the standby mark and the journal a restarted bridge (or
# `tcpfo cleanup`) uses to undo a killed one's rules: keep it on the host so
# that it outlives the container.
#
# The entrypoint (deploy/docker/entrypoint.sh) checks the capabilities, the
# writable /proc/sys and the host's network before a bridge starts, names
# the option that is missing and exits 78; it is tested here without Docker
# (test/deploy/docker-entrypoint.test.ts), each lack made for real.
#
# Not run here (no Docker engine on the machines this was written on): the
# build of the two stages and the container itself. Every step's command is
# the one CI runs on Debian 12 (scripts/setup-system.sh's packages, npm ci,
# npm run build); the image is Debian 12 (bookworm) with Node.js 22.

FROM node:22-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ clang llvm libbpf-dev libpcap-dev libnetfilter-queue-dev libmnl-dev \
 && rm -rf /var/lib/apt/lists/*
# node-gyp builds against the image's own Node headers, without downloading them.
ENV npm_config_nodedir=/usr/local
WORKDIR /src
COPY package.json npm-shrinkwrap.json binding.gyp tsconfig.json ./
COPY native ./native
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:22-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpcap0.8 libnetfilter-queue1 libmnl0 libbpf1 iptables nftables iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/tcpfo
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/build/Release/tcpfo_nfqueue.node /src/build/Release/xlate.bpf.o /src/build/Release/ccreset.bpf.o ./build/Release/
COPY --from=build /src/dist/cli.js ./dist/
COPY --from=build /src/dist/bridge ./dist/bridge
COPY --from=build /src/dist/config ./dist/config
COPY --from=build /src/dist/net ./dist/net
COPY config/tcpfo.example.yaml ./config/
COPY deploy ./deploy
COPY deploy/docker/entrypoint.sh /usr/local/bin/tcpfo-entrypoint
RUN ln -s /opt/tcpfo/dist/cli.js /usr/local/bin/tcpfo && chmod 755 dist/cli.js /usr/local/bin/tcpfo-entrypoint
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s CMD ["tcpfo", "status", "-c", "/etc/tcpfo/tcpfo.yaml"]
ENTRYPOINT ["tcpfo-entrypoint"]
CMD ["--help"]
