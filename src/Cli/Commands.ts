import { agentSettings } from "../PicoConfig/Agent.js"
import { configFileSettings } from "../PicoConfig/ConfigFile.js"
import { devClusterSettings } from "../PicoConfig/DevCluster.js"
import { forwardTcpSettings } from "../PicoConfig/Forward.js"
import { serverSettings } from "../PicoConfig/Server.js"
import { statusSettings } from "../PicoConfig/Status.js"
import type { CommandSpec } from "./Spec.js"

const configFileParagraph =
  "Every flag can also be set in the YAML file given with --config.path: a flag wins over the file, the file " +
  "over the default."

const server: CommandSpec = {
  name: "server",
  summary: "Run a Pico server node.",
  description: [
    "Run a Pico server node. It listens on four ports: proxy (8000) for requests from proxy clients, upstream " +
      "(8001) for the agents' tunnels, admin (8002) for health, metrics and the status API, and gossip (8003, " +
      "UDP and TCP) for the other nodes of the cluster.",
    configFileParagraph,
  ],
  examples: ["pico server", "pico server --config.path server.yaml --cluster.join pico.internal"],
  settings: { ...configFileSettings, ...serverSettings },
  sections: {
    config: "Config file",
    proxy: "Proxy port (requests from proxy clients)",
    upstream: "Upstream port (the agents' tunnels)",
    admin: "Admin port (health, metrics, status API)",
    gossip: "Gossip port (UDP and TCP, between nodes)",
    cluster: "Cluster membership",
    server: "Shutdown",
    auth: "Upstream authentication (tokens agents present)",
    log: "Logging",
  },
  load: () => import("./ServerCommand.js").then((command) => command.run),
}

const agent: CommandSpec = {
  name: "agent",
  summary: "Run a Pico agent: tunnel local services to a Pico server.",
  description: [
    "Run a Pico agent next to your services. For each --endpoints entry it opens an outbound tunnel to a Pico " +
      "server's upstream port, registers the endpoint id, and forwards the requests that arrive to the local " +
      "address.",
    "A tcp:// address makes a TCP endpoint (a database, SSH, any TCP service), which clients reach with pico " +
      "forward tcp. An https:// address is reached with TLS (see --forwarder.tls.*). Through an HTTP proxy, set HTTPS_PROXY " +
      "(or HTTP_PROXY for an http:// server URL), and NO_PROXY for hosts to reach directly.",
    configFileParagraph,
  ],
  examples: [
    "pico agent --endpoints my-endpoint/localhost:4000",
    "pico agent --endpoints api/4000,web/4001 --server.url https://pico.example.com",
    "pico agent --endpoints api/https://host:8443 --forwarder.tls.ca-file ca.pem",
    "pico agent --endpoints db/tcp://localhost:5432",
  ],
  settings: { ...configFileSettings, ...agentSettings },
  sections: {
    config: "Config file",
    server: "Pico server connection",
    auth: "Authentication",
    admin: "Agent admin port (/health, /metrics)",
    forwarder: "Forwarding",
    log: "Logging",
  },
  load: () => import("./AgentCommand.js").then((command) => command.run),
}

const forward: CommandSpec = {
  name: "forward",
  summary: "Reach an endpoint from this machine through a Pico proxy port.",
  subcommands: [
    {
      name: "tcp",
      summary: "Accept local TCP connections and carry each one to a TCP endpoint.",
      description: [
        "Listen on a local address and carry each connection accepted there to a TCP endpoint (an agent's " +
          "--endpoints id/tcp://host:port), through a node's proxy port: an HTTP upgrade, so it crosses load " +
          "balancers, proxy authentication and TLS as HTTP does. Point psql, ssh or redis-cli at the local address.",
        configFileParagraph,
      ],
      examples: [
        "pico forward tcp --endpoint db --local.bind-addr 127.0.0.1:15432",
        "pico forward tcp --endpoint ssh --server.url https://pico.example.com",
      ],
      settings: { ...configFileSettings, ...forwardTcpSettings },
      sections: {
        config: "Config file",
        local: "Local listener",
        server: "Pico proxy port",
        auth: "Authentication",
        log: "Logging",
      },
      load: () => import("./ForwardCommand.js").then((command) => command.tcp),
    },
  ],
}

const nodeId = {
  name: "node-id",
  description: 'A node id, as pico status cluster nodes lists them; "local" is the node answering.',
}

const status: CommandSpec = {
  name: "status",
  summary: "Inspect a running cluster through a node's admin API.",
  description: [
    "Inspect a running Pico cluster through a node's admin API, and print the answer as YAML (or JSON). The " +
      "flags go anywhere after status.",
  ],
  examples: [
    "pico status cluster nodes --server.url http://pico.internal:8002",
    "pico status proxy endpoints --forward pico-1-fuvaflv",
  ],
  settings: statusSettings,
  subcommands: [
    {
      name: "proxy",
      summary: "What the node proxies.",
      subcommands: [
        {
          name: "endpoints",
          summary: "The node's endpoints and the addresses of their upstreams.",
          load: () => import("./StatusCommand.js").then((command) => command.proxyEndpoints),
        },
      ],
    },
    {
      name: "cluster",
      summary: "The cluster as the node sees it.",
      subcommands: [
        {
          name: "nodes",
          summary: "Every node the answering node knows, with endpoint and upstream counts.",
          load: () => import("./StatusCommand.js").then((command) => command.clusterNodes),
        },
        {
          name: "node",
          summary: "One node, with the number of upstreams of each of its endpoints.",
          args: [nodeId],
          load: () => import("./StatusCommand.js").then((command) => command.clusterNode),
        },
      ],
    },
    {
      name: "gossip",
      summary: "The gossip state behind the cluster view.",
      subcommands: [
        {
          name: "nodes",
          summary: "Gossip's view of every node: address, status, version, expiry.",
          load: () => import("./StatusCommand.js").then((command) => command.gossipNodes),
        },
        {
          name: "node",
          summary: "One node's gossip entries, tombstones and internal keys included.",
          args: [nodeId],
          load: () => import("./StatusCommand.js").then((command) => command.gossipNode),
        },
      ],
    },
  ],
}

const dev: CommandSpec = {
  name: "dev",
  summary: "Tools for developing with Pico on one machine.",
  subcommands: [
    {
      name: "cluster",
      summary: "Run a whole cluster on this machine, behind a load balancer.",
      description: [
        "Run a cluster on this machine for development: N real nodes in one process, gossiping over loopback, " +
          "behind a built-in load balancer on the usual ports (proxy :8000, upstream :8001, admin :8002). " +
          "Point an agent, curl and pico status at it as at a production cluster.",
      ],
      examples: ["pico dev cluster --nodes 3"],
      settings: devClusterSettings,
      load: () => import("./DevClusterCommand.js").then((command) => command.run),
    },
  ],
}

/** Every `pico` command. */
export const pico: CommandSpec = {
  name: "pico",
  summary: "A self-hosted reverse-tunnel proxy.",
  description: [
    "Pico is a self-hosted reverse-tunnel proxy that serves production traffic from a cluster of nodes. An " +
      "agent next to a service opens an outbound connection to a node and registers an endpoint id; requests " +
      "for that endpoint come back down that connection, so the service never opens a port.",
  ],
  subcommands: [server, agent, forward, status, dev],
}
