import { execFile } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parser } from "@prometheus-io/lezer-promql"
import { Duration, Effect } from "effect"
import { describe, expect, it } from "vitest"
import YAML from "yaml"
import { agentFamilies, processFamilies, serverFamilies } from "../src/Metrics.js"
import { load, serverSettings } from "../src/PicoConfig.js"
import { closedPort, startHttpServer } from "./support/http.js"

const root = new URL("../", import.meta.url)
const read = (path: string) => readFileSync(new URL(path, root), "utf8")

// --- Kubernetes ---

interface Manifest {
  readonly kind: string
  readonly metadata: { readonly name: string }
  // biome-ignore lint/suspicious/noExplicitAny: manifests are checked field by field below
  readonly spec?: any
  readonly data?: Record<string, string>
}

const manifests: ReadonlyArray<Manifest> = readdirSync(new URL("deploy/kubernetes/", root))
  .filter((file) => file.endsWith(".yaml"))
  .flatMap((file) =>
    YAML.parseAllDocuments(read(`deploy/kubernetes/${file}`)).map((document) => {
      expect(document.errors, file).toEqual([])
      return document.toJS() as Manifest
    }),
  )

const find = (kind: string, name: string) => {
  const manifest = manifests.find((candidate) => candidate.kind === kind && candidate.metadata.name === name)
  expect(manifest, `${kind} ${name}`).toBeDefined()
  return manifest as Manifest
}

describe("deploy/kubernetes", () => {
  it("holds a headless Service, a ConfigMap, a StatefulSet, a PodDisruptionBudget and their Kustomization", () => {
    expect(new Set(manifests.map((manifest) => manifest.kind))).toEqual(
      new Set(["Kustomization", "Service", "ConfigMap", "StatefulSet", "PodDisruptionBudget"]),
    )
    const resources = (
      manifests.find((manifest) => manifest.kind === "Kustomization") as { resources?: unknown }
    ).resources
    const files = readdirSync(new URL("deploy/kubernetes/", root)).filter(
      (file) => file !== "kustomization.yaml",
    )
    expect(new Set(resources as Array<string>)).toEqual(new Set(files))
  })

  it("resolves every pod through the headless service, on all four ports", () => {
    const service = find("Service", "pico")
    expect(service.spec.clusterIP).toBe("None")
    // Joining happens before a pod is ready.
    expect(service.spec.publishNotReadyAddresses).toBe(true)
    const ports = service.spec.ports.map((port: { port: number; protocol?: string }) => [
      port.port,
      port.protocol ?? "TCP",
    ])
    expect(ports).toEqual([
      [8000, "TCP"],
      [8001, "TCP"],
      [8002, "TCP"],
      [8003, "TCP"],
      [8003, "UDP"],
    ])
  })

  it("configures each node to prefix its id with its pod name and join the headless service", async () => {
    const directory = mkdtempSync(join(tmpdir(), "pico-deploy-"))
    try {
      const path = join(directory, "server.yaml")
      writeFileSync(path, find("ConfigMap", "pico").data?.["server.yaml"] ?? "")
      // Loaded the way the pod loads it: pico server --config.path ... --config.expand-env.
      const config = await Effect.runPromise(
        load(serverSettings, { flags: {}, configPath: path, expandEnv: true, env: { POD_NAME: "pico-0" } }),
      )
      expect(config.cluster.nodeIdPrefix).toBe("pico-0-")
      expect(config.cluster.join).toEqual(["pico"])
      expect(Duration.toMillis(config.server.gracefulShutdownTimeout)).toBe(60_000)
      expect(config.gossip.secretKey).toEqual(["file:/etc/pico-gossip/gossip-keys"])
    } finally {
      rmSync(directory, { recursive: true, force: true })
    }
  })

  it("gives every node the gossip key from a Secret generated out of an uncommitted file, where the config reads it", () => {
    const kustomization = manifests.find((manifest) => manifest.kind === "Kustomization") as {
      secretGenerator?: ReadonlyArray<{ name: string; files: ReadonlyArray<string> }>
    }
    expect(kustomization.secretGenerator).toEqual([{ name: "pico-gossip", files: ["gossip-keys"] }])
    expect(read(".gitignore").split("\n")).toContain("deploy/kubernetes/gossip-keys")
    const pod = find("StatefulSet", "pico").spec.template.spec
    expect(pod.volumes).toContainEqual({ name: "gossip-key", secret: { secretName: "pico-gossip" } })
    expect(pod.containers[0].volumeMounts).toContainEqual({
      name: "gossip-key",
      mountPath: "/etc/pico-gossip",
      readOnly: true,
    })
  })

  it("runs three replicas with probes, and more grace than the graceful shutdown timeout", () => {
    const statefulSet = find("StatefulSet", "pico")
    expect(statefulSet.spec.replicas).toBe(3)
    expect(statefulSet.spec.serviceName).toBe("pico")
    const pod = statefulSet.spec.template.spec
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(60)
    const [container] = pod.containers
    expect(container.args).toEqual([
      "server",
      "--config.path",
      "/etc/pico/server.yaml",
      "--config.expand-env",
    ])
    expect(container.volumeMounts).toContainEqual(expect.objectContaining({ mountPath: "/etc/pico" }))
    expect(container.env).toContainEqual({
      name: "POD_NAME",
      valueFrom: { fieldRef: { fieldPath: "metadata.name" } },
    })
    expect(container.readinessProbe.httpGet).toEqual({ path: "/ready", port: "admin" })
    expect(container.livenessProbe.httpGet).toEqual({ path: "/health", port: "admin" })
    expect(container.ports).toContainEqual({ name: "admin", containerPort: 8002 })
    expect(pod.securityContext.runAsNonRoot).toBe(true)
  })

  it("requests CPU without limiting it (operations.md says why), and limits memory above V8's heap", () => {
    const [container] = find("StatefulSet", "pico").spec.template.spec.containers
    expect(container.resources.requests.cpu).toBe("250m")
    expect(container.resources.limits.cpu).toBeUndefined()
    expect(container.resources.limits.memory).toBe("1Gi")
    expect(container.env).toContainEqual({ name: "NODE_OPTIONS", value: "--max-old-space-size=768" })
  })
})

// --- Dockerfile ---

describe("Dockerfile", () => {
  const dockerfile = read("Dockerfile")

  it("installs from the lock file on the active Node LTS", () => {
    expect(dockerfile).toContain("RUN npm ci ")
    expect(dockerfile.match(/^FROM node:24-/gm)?.length).toBe(2)
  })

  it("has a HEALTHCHECK that passes on a 200 from the admin port's /health and fails otherwise", async () => {
    const command = JSON.parse(
      /^HEALTHCHECK [^\n]*\\\n\s*CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? "[]",
    ) as Array<string>
    expect(command.slice(0, 2)).toEqual(["node", "-e"])
    const script = command[2] as string
    expect(script).toContain("http://127.0.0.1:8002/health")
    const check = (port: number) =>
      new Promise<number | null>((resolve) =>
        execFile(process.execPath, ["-e", script.replace(":8002", `:${port}`)], (error) =>
          resolve(error === null ? 0 : (error.code as number)),
        ),
      )
    const healthy = await startHttpServer((req, res) => {
      res.statusCode = req.url === "/health" ? 200 : 404
      res.end()
    })
    const unhealthy = await startHttpServer((_req, res) => {
      res.statusCode = 503
      res.end()
    })
    try {
      expect(await check(healthy.port)).toBe(0)
      expect(await check(unhealthy.port)).toBe(1)
      expect(await check(await closedPort())).toBe(1)
    } finally {
      await healthy.close()
      await unhealthy.close()
    }
  })
})

// --- Grafana ---

interface Dashboard {
  readonly uid: string
  readonly title: string
  readonly panels: ReadonlyArray<{
    readonly title: string
    readonly targets: ReadonlyArray<{ expr: string }>
  }>
}

const dashboardFiles = readdirSync(new URL("deploy/grafana/", root)).filter((file) => file.endsWith(".json"))
const dashboards = dashboardFiles.map((file) => JSON.parse(read(`deploy/grafana/${file}`)) as Dashboard)

/**
 * The metric names a dashboard query selects; fails on a query Prometheus would not parse once Grafana has put
 * in its interval variables.
 */
const selectedMetrics = (query: string): Array<string> => {
  const expr = query.replace(/\$__(rate_interval|interval|range)\b/g, "1m")
  const names: Array<string> = []
  parser.parse(expr).iterate({
    enter: (node) => {
      if (node.type.isError) throw new Error(`PromQL does not parse at ${node.from}: ${expr}`)
      if (node.name === "VectorSelector") {
        const identifier = node.node.getChild("Identifier")
        if (identifier !== null) names.push(expr.slice(identifier.from, identifier.to))
      }
    },
  })
  return names
}

describe("deploy/grafana", () => {
  it("has the cluster, gossip and proxy dashboards", () => {
    expect(dashboards.map((dashboard) => dashboard.uid).sort()).toEqual([
      "pico-cluster",
      "pico-gossip",
      "pico-proxy",
    ])
  })

  it("queries only metrics Pico declares, in PromQL that parses", () => {
    const declared = new Set<string>()
    for (const family of [...serverFamilies, ...agentFamilies, ...processFamilies]) {
      declared.add(family.name)
      if (family.type === "histogram")
        for (const suffix of ["_bucket", "_sum", "_count"]) declared.add(family.name + suffix)
    }
    for (const dashboard of dashboards)
      for (const panel of dashboard.panels) {
        expect(panel.targets.length, `${dashboard.title}: ${panel.title}`).toBeGreaterThan(0)
        for (const { expr } of panel.targets) {
          const names = selectedMetrics(expr)
          expect(names.length, expr).toBeGreaterThan(0)
          for (const name of names) expect(declared, `${dashboard.title}: ${name}`).toContain(name)
        }
      }
  })

  it("is what the demo's Grafana provisions", () => {
    const compose = YAML.parse(read("docs/demo/docker-compose.yaml"))
    const provisioning = YAML.parse(read("docs/demo/grafana/dashboards.yaml"))
    const mounted = (compose.services.grafana.volumes as Array<string>).find((volume) =>
      volume.startsWith("../../deploy/grafana:"),
    )
    expect(mounted?.split(":")[1]).toBe(provisioning.providers[0].options.path)
  })
})

// --- docs/demo ---

describe("docs/demo", () => {
  it("gives every node a gossip key made on the first start, where pico.yaml reads it", async () => {
    const compose = YAML.parse(read("docs/demo/docker-compose.yaml"), { merge: true })
    const picos = Object.entries(compose.services as Record<string, Record<string, unknown>>).filter(
      ([name]) => name.startsWith("pico-"),
    )
    expect(picos).toHaveLength(3)
    for (const [, service] of picos) {
      expect(service.volumes).toContain("gossip-key:/etc/pico-gossip:ro")
      expect(service.depends_on).toEqual({ "gossip-key": { condition: "service_completed_successfully" } })
    }
    expect(compose.services["gossip-key"].volumes).toEqual(["gossip-key:/keys"])
    expect(compose.services["gossip-key"].command.join(" ")).toContain("> /keys/gossip-keys")
    const config = await Effect.runPromise(
      load(serverSettings, {
        flags: {},
        configPath: new URL("docs/demo/pico.yaml", root).pathname,
        expandEnv: true,
        env: { HOSTNAME: "pico-1" },
      }),
    )
    expect(config.gossip.secretKey).toEqual(["file:/etc/pico-gossip/gossip-keys"])
  })
})

// --- docs/operations.md ---

describe("docs/operations.md", () => {
  it("lists every metric", () => {
    const guide = read("docs/operations.md")
    for (const family of [...serverFamilies, ...agentFamilies, ...processFamilies])
      expect(guide, family.name).toContain(`\`${family.name}\``)
  })
})
