// Checks rendered Kubernetes manifests (`kubectl kustomize` output) of
// deploy/k8s, one overlay at a time, in three steps:
//
// 1. Schemas. Every object against the Kubernetes JSON schemas bundled by
//    the npm package kubernetes-models (Ajv validators compiled from the
//    Kubernetes OpenAPI spec: types, required fields, enums, formats), and
//    again, strictly, against the Kubernetes API types of kubernetes-types
//    with the TypeScript compiler, whose excess-property check rejects any
//    field the API does not have (a misspelled `readinesProbe` passes a
//    JSON schema without additionalProperties: false, and the API server
//    would drop it).
// 2. Wiring, without running anything: selectors match pods, Service ports
//    and probes name container ports, the flags' listen ports are the
//    container ports, the --config file is a key of the mounted ConfigMap,
//    resolver / NATS / upstream targets are Services of the right port, the
//    NATS routes name the StatefulSet's pods, the public and browser
//    Services and the NetworkPolicies expose what they should (browsers
//    reach the replicas' hosted gateway, or the standalone gateway pods, and
//    never the internal port), drain timings fit the grace period, every
//    container is locked down, one image runs everywhere, and the
//    Dockerfile installs what the manifests run.
// 3. The real binaries, started with the flags, files and environment of
//    the manifests, adapted to loopback (each container port becomes a free
//    port on 127.0.0.1, Service and pod DNS names become the ports of the
//    processes behind them, volumes become temporary directories): init
//    containers run to completion, every readiness and liveness probe is
//    asked as the kubelet would (gRPC health, HTTP GET), a subscriber gets
//    an item through the resolver table, the NATS cluster forms its routes,
//    a browser (WebSocket) gets the item through the browser Service, which
//    also serves the demo page, and SIGTERM drains entitysync within its
//    grace and exits 0, telling that browser to reconnect (1012).
//
// usage: node manifests_check.mjs --bin=DIR --tmp=DIR --dockerfile=FILE
//          NAME=RENDERED.yaml...
// DIR has the Bazel layout: DIR/server/entitysync-server, ... Exit 0 when
// every check passed; each failure is printed as "FAIL overlay: ...".

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { createRequire } from "node:module";
import { parseAllDocuments } from "yaml";
import ts from "typescript";
import WebSocket from "ws";

const require = createRequire(import.meta.url);

// ------------------------------------------------------------------ args
const opts = { overlays: [] };
for (const arg of process.argv.slice(2)) {
  const m = /^--(bin|tmp|dockerfile)=(.*)$/.exec(arg);
  if (m) opts[m[1]] = m[2];
  else if (/^[\w-]+=/.test(arg)) {
    const at = arg.indexOf("=");
    opts.overlays.push({ name: arg.slice(0, at), file: arg.slice(at + 1) });
  } else {
    console.error(`unknown argument ${arg}`);
    process.exit(2);
  }
}
if (!opts.bin || !opts.tmp || !opts.dockerfile || opts.overlays.length === 0) {
  console.error(
    "usage: manifests_check.mjs --bin=DIR --tmp=DIR --dockerfile=FILE NAME=FILE...",
  );
  process.exit(2);
}

// Binaries the manifests run, by their command name in the image.
const which = (name) => {
  for (const dir of ["/usr/sbin", "/usr/bin", "/usr/local/bin"]) {
    if (fs.existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return name;
};
const BINARIES = {
  "entitysync-server": path.join(opts.bin, "server/entitysync-server"),
  "entitysync-gateway": path.join(opts.bin, "adapters/gateway/entitysync-gateway"),
  "entitysync-webhook": path.join(opts.bin, "adapters/webhook/entitysync-webhook"),
  items: path.join(opts.bin, "examples/items/items"),
  entitysync: path.join(opts.bin, "client/entitysync"),
  "grpc-health-check": path.join(opts.bin, "deploy/grpc-health-check"),
  "nats-server": which("nats-server"),
};

// What each overlay promises (issue: dev one replica, prod three or more).
const EXPECTED_REPLICAS = {
  dev: { min: 1, max: 1 },
  prod: { min: 3, max: Infinity },
  "prod-standalone-gateway": { min: 3, max: Infinity },
};
// Who serves the browsers (Service entitysync-gateway): the gateway hosted
// in the replicas (--gateway_address, the base) or the standalone
// entitysync-gateway pods in front of them (issue 17).
const EXPECTED_BROWSERS = { dev: "hosted", prod: "hosted", "prod-standalone-gateway": "standalone" };

let failures = 0;
let current = "";
let held = null;  // failures of a run that may be run again (runOverlayRetrying)
const fail = (msg) => {
  if (held) {
    held.push(msg);
    return;
  }
  failures++;
  console.log(`FAIL ${current}: ${msg}`);
};
const note = (msg) => console.log(`  ${current}: ${msg}`);
const check = (cond, msg) => {
  if (!cond) fail(msg);
  return !!cond;
};

// ------------------------------------------------------------------ helpers
const id = (o) => `${o.kind}/${o.metadata?.name}`;
const isWorkload = (o) =>
  ["Deployment", "StatefulSet", "DaemonSet"].includes(o.kind);
const podSpec = (w) => w.spec?.template?.spec ?? {};
const podLabels = (w) => w.spec?.template?.metadata?.labels ?? {};
const containersOf = (w) => podSpec(w).containers ?? [];
const allContainersOf = (w) => [
  ...(podSpec(w).initContainers ?? []),
  ...containersOf(w),
];
const matches = (selector, labels) =>
  selector != null &&
  Object.entries(selector).every(([k, v]) => labels[k] === v);
const argv = (c) => [...(c.command ?? []), ...(c.args ?? [])];
// --name=value flags of a container (the last one wins, as in absl).
const flagsOf = (c) => {
  const flags = {};
  for (const a of argv(c).slice(1)) {
    const m = /^--?([\w-]+)(?:=(.*))?$/.exec(a);
    if (m) flags[m[1]] = m[2] ?? "true";
  }
  return flags;
};
const portOf = (address) => {
  const m = /:(\d+)$/.exec(address ?? "");
  return m ? Number(m[1]) : undefined;
};
// A container port by number or name, across the pod's containers.
const containerPort = (w, ref) => {
  for (const c of containersOf(w)) {
    for (const p of c.ports ?? []) {
      if (p.containerPort === ref || p.name === ref) return p.containerPort;
    }
  }
  return undefined;
};
const durationSeconds = (s) => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s ?? "");
  if (!m) return undefined;
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]];
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ 1. schemas
async function validateSchemas(objects) {
  for (const o of objects) {
    let mod;
    try {
      mod = await import(`kubernetes-models/${o.apiVersion}`);
    } catch {
      fail(`${id(o)}: no schema for apiVersion ${o.apiVersion}`);
      continue;
    }
    const Model = mod[o.kind];
    if (typeof Model !== "function") {
      fail(`${id(o)}: ${o.apiVersion} has no kind ${o.kind}`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (e) {
      fail(`${id(o)}: schema: ${e.message}`);
    }
  }
}

// kubernetes-types lays the API out as GROUP/VERSION (core for "v1",
// the first label of dotted groups: networking.k8s.io -> networking).
function strictTypes(objects, dir) {
  const typesDir = path.dirname(require.resolve("kubernetes-types/package.json"));
  const lines = [];
  objects.forEach((o, i) => {
    const [group, version] = o.apiVersion.includes("/")
      ? o.apiVersion.split("/")
      : ["core", o.apiVersion];
    const file = path.join(typesDir, group.split(".")[0], version);
    lines.push(`import type { ${o.kind} as T${i} } from ${JSON.stringify(file)};`);
  });
  const first = lines.length;
  objects.forEach((o, i) => {
    lines.push(`export const o${i}: T${i} = ${JSON.stringify(o)};`);
  });
  const file = path.join(dir, "strict.ts");
  fs.writeFileSync(file, lines.join("\n") + "\n");
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    target: ts.ScriptTarget.ES2020,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Node10,
  });
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const text = ts.flattenDiagnosticMessageText(d.messageText, " ");
    let where = "strict.ts";
    if (d.file && d.start !== undefined) {
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      const o = objects[line >= first ? line - first : line];
      if (o) where = id(o);
    }
    fail(`${where}: API types: ${text}`);
  }
}

// ------------------------------------------------------------------ 2. wiring
function checkWiring(objects, dockerfile) {
  const byKind = (k) => objects.filter((o) => o.kind === k);
  const named = (k, n) => objects.find((o) => o.kind === k && o.metadata?.name === n);
  const workloads = objects.filter(isWorkload);
  const services = byKind("Service");
  const workloadOf = (selector) =>
    workloads.filter((w) => matches(selector, podLabels(w)));
  const serviceTarget = (host, port) => {
    const svc = named("Service", host.split(".")[0]);
    if (!svc) return { error: `no Service ${host}` };
    const sp = (svc.spec.ports ?? []).find((p) => p.port === port);
    if (!sp) return { error: `Service ${host} has no port ${port}` };
    const ws = workloadOf(svc.spec.selector);
    if (ws.length !== 1) return { error: `Service ${host} selects ${ws.length} workloads` };
    const cp = containerPort(ws[0], sp.targetPort ?? sp.port);
    if (cp === undefined) return { error: `Service ${host} port ${port}: no container port ${sp.targetPort}` };
    return { workload: ws[0], containerPort: cp };
  };

  // Every workload: labels, lockdown, resources, probes on declared ports.
  for (const w of workloads) {
    check(matches(w.spec.selector?.matchLabels, podLabels(w)),
      `${id(w)}: selector does not match its pod labels`);
    const spec = podSpec(w);
    check(spec.securityContext?.runAsNonRoot === true, `${id(w)}: pod not runAsNonRoot`);
    check(spec.securityContext?.seccompProfile?.type === "RuntimeDefault",
      `${id(w)}: no RuntimeDefault seccomp profile`);
    check(spec.automountServiceAccountToken === false,
      `${id(w)}: mounts a service account token it does not need`);
    for (const c of allContainersOf(w)) {
      const where = `${id(w)} container ${c.name}`;
      const sc = c.securityContext ?? {};
      check(sc.readOnlyRootFilesystem === true, `${where}: root filesystem not read-only`);
      check(sc.allowPrivilegeEscalation === false, `${where}: privilege escalation allowed`);
      check(sc.runAsNonRoot === true || spec.securityContext?.runAsNonRoot === true,
        `${where}: may run as root`);
      check(JSON.stringify(sc.capabilities?.drop) === '["ALL"]', `${where}: capabilities not dropped`);
      for (const kind of ["requests", "limits"]) {
        for (const r of ["cpu", "memory"]) {
          check(c.resources?.[kind]?.[r] !== undefined, `${where}: no ${r} ${kind}`);
        }
      }
      for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
        const p = c[probe];
        if (!p) continue;
        const port = p.grpc?.port ?? p.httpGet?.port ?? p.tcpSocket?.port;
        if (port !== undefined) {
          check((c.ports ?? []).some((cp) => cp.containerPort === port || cp.name === port),
            `${where}: ${probe} port ${port} is not a port of the container`);
        }
      }
      // The image's programs are the ones the Dockerfile installs.
      if (c.image?.includes("entitysync")) {
        check(dockerfile.binaries.has(argv(c)[0]),
          `${where}: runs ${argv(c)[0]}, which deploy/Dockerfile does not install`);
        check(spec.securityContext?.runAsUser === dockerfile.uid,
          `${where}: runAsUser ${spec.securityContext?.runAsUser} is not the image's user ${dockerfile.uid}`);
        for (const p of argv(c).join(" ").match(/\/usr\/share\/entitysync\/[\w./-]*/g) ?? []) {
          check(dockerfile.dirs.has(p.replace(/\/$/, "")),
            `${where}: ${p} is not a directory the Dockerfile fills`);
        }
      }
      // Every config volume names a ConfigMap that exists.
      for (const v of spec.volumes ?? []) {
        if (v.configMap) {
          check(named("ConfigMap", v.configMap.name), `${id(w)}: volume ${v.name}: no ConfigMap ${v.configMap.name}`);
        }
      }
    }
  }

  // Services: select a workload, target its ports.
  for (const s of services) {
    const ws = workloadOf(s.spec.selector);
    if (!check(ws.length === 1, `${id(s)}: selects ${ws.length} workloads`)) continue;
    for (const p of s.spec.ports ?? []) {
      check(containerPort(ws[0], p.targetPort ?? p.port) !== undefined,
        `${id(s)}: port ${p.port} targets ${p.targetPort}, not a container port of ${id(ws[0])}`);
    }
  }
  for (const o of [...byKind("PodDisruptionBudget"), ...byKind("NetworkPolicy")]) {
    const sel = o.spec.selector?.matchLabels ?? o.spec.podSelector?.matchLabels;
    check(workloadOf(sel).length >= 1, `${id(o)}: selects no workload`);
  }
  for (const h of byKind("HorizontalPodAutoscaler")) {
    const t = h.spec.scaleTargetRef;
    const w = named(t.kind, t.name);
    if (check(w, `${id(h)}: no ${t.kind}/${t.name} to scale`)) {
      // The autoscaler owns the count: one in the manifest would be
      // reapplied by every `kubectl apply`, undoing its scaling.
      check(w.spec.replicas === undefined,
        `${id(w)}: sets replicas although ${id(h)} scales it`);
      check(1 <= h.spec.minReplicas && h.spec.minReplicas <= h.spec.maxReplicas,
        `${id(h)}: bounds ${h.spec.minReplicas}..${h.spec.maxReplicas}`);
      const want = EXPECTED_REPLICAS[current];
      if (want) {
        check(h.spec.minReplicas >= want.min && h.spec.maxReplicas <= want.max,
          `${id(h)}: ${h.spec.minReplicas}..${h.spec.maxReplicas} replicas, the ${current} overlay wants ${want.min}..${want.max === Infinity ? "more" : want.max}`);
      }
      check(containersOf(w).every((c) => c.resources?.requests?.cpu),
        `${id(h)}: CPU utilization needs CPU requests`);
    }
  }

  // entitysync-server: its flags against its ports, probes, files, peers.
  const server = workloads.find((w) => argv(containersOf(w)[0])[0] === "entitysync-server");
  if (!check(server, "no workload runs entitysync-server")) return;
  const c = containersOf(server)[0];
  const f = flagsOf(c);
  const portNamed = (n) => (c.ports ?? []).find((p) => p.name === n)?.containerPort;
  const publicPort = portOf(f.public_address);
  const internalPort = portOf(f.internal_address);
  const metricsPort = portOf(f.metrics_address);
  check(publicPort && portNamed("grpc-public") === publicPort,
    `--public_address ${f.public_address} is not container port grpc-public (${portNamed("grpc-public")})`);
  check(internalPort && portNamed("grpc-internal") === internalPort,
    `--internal_address ${f.internal_address} is not container port grpc-internal (${portNamed("grpc-internal")})`);
  check(metricsPort && portNamed("metrics") === metricsPort,
    `--metrics_address ${f.metrics_address} is not container port metrics (${portNamed("metrics")})`);
  for (const a of ["public_address", "internal_address", "metrics_address"]) {
    check(f[a]?.startsWith("0.0.0.0:"), `--${a}=${f[a]} does not listen on the pod's address`);
  }
  for (const probe of ["readinessProbe", "livenessProbe"]) {
    check(c[probe]?.grpc?.port === internalPort,
      `${probe} is not a gRPC health check of the internal port ${internalPort}`);
  }
  // Readiness asks about the server as a whole (NOT_SERVING while draining
  // or without NATS); liveness asks the "liveness" service, which stays
  // SERVING, so that a NATS outage does not restart every replica.
  check((c.readinessProbe?.grpc?.service ?? "") === "",
    `readinessProbe asks service "${c.readinessProbe?.grpc?.service}", not the server as a whole`);
  check(c.livenessProbe?.grpc?.service === "liveness",
    `livenessProbe asks service "${c.livenessProbe?.grpc?.service ?? ""}", not "liveness" (the server as a whole is NOT_SERVING without NATS)`);
  // Drain: preStop, then --shutdown_grace, inside the grace period.
  const preStop = c.lifecycle?.preStop?.exec?.command;
  const preStopSeconds = preStop?.[0] === "sleep" ? Number(preStop[1]) : undefined;
  const grace = durationSeconds(f.shutdown_grace ?? "10s");
  check(preStopSeconds > 0, "entitysync has no preStop sleep");
  check(podSpec(server).terminationGracePeriodSeconds > preStopSeconds + grace,
    `terminationGracePeriodSeconds ${podSpec(server).terminationGracePeriodSeconds} is not above preStop ${preStopSeconds}s + --shutdown_grace ${grace}s`);
  // --config: a key of the ConfigMap mounted at its directory.
  const mount = (c.volumeMounts ?? []).find((m) => path.dirname(f.config ?? "") === m.mountPath.replace(/\/$/, ""));
  if (check(mount, `--config=${f.config}: no volume mounted at ${path.dirname(f.config ?? "")}`)) {
    const vol = (podSpec(server).volumes ?? []).find((v) => v.name === mount.name);
    const cm = vol?.configMap && named("ConfigMap", vol.configMap.name);
    if (check(cm, `--config=${f.config}: the volume at ${mount.mountPath} is not a ConfigMap of this overlay`)) {
      const key = path.basename(f.config);
      check(cm.data && key in cm.data,
        `--config=${f.config}: ConfigMap ${cm.metadata.name} has no key ${key} (has ${Object.keys(cm.data ?? {})})`);
      // Each resolver target is a Service port leading to a listening resolver.
      for (const [, target] of (cm.data?.[key] ?? "").matchAll(/target:\s*"([^"]+)"/g)) {
        const [host, port] = target.split(":");
        const t = serviceTarget(host, Number(port));
        if (!check(!t.error, `resolver target ${target}: ${t.error}`)) continue;
        const rc = containersOf(t.workload)[0];
        const listen = portOf(flagsOf(rc).listen);
        check(listen === t.containerPort,
          `resolver target ${target} reaches port ${t.containerPort}, but ${argv(rc)[0]} --listen=${flagsOf(rc).listen}`);
      }
    }
  }
  // --nats_url: Services in front of NATS client ports.
  check(f.bus === "nats", `--bus=${f.bus}: replicas do not share notices`);
  for (const url of (f.nats_url ?? "").split(",")) {
    const m = /^nats:\/\/([^:/]+):(\d+)$/.exec(url);
    if (!check(m, `--nats_url: ${url} is not nats://HOST:PORT`)) continue;
    const t = serviceTarget(m[1], Number(m[2]));
    if (!check(!t.error, `--nats_url ${url}: ${t.error}`)) continue;
    const nf = flagsOf(containersOf(t.workload)[0]);
    check(Number(nf.port ?? nf.p ?? 4222) === t.containerPort,
      `--nats_url ${url} reaches port ${t.containerPort}, but nats-server listens on ${nf.port}`);
  }

  // One image (one version) for every entitysync container: an overlay
  // that adds a workload repeats `images`, which must not drift.
  const images = new Set(workloads.flatMap(allContainersOf).map((x) => x.image)
    .filter((i) => i?.includes("entitysync")));
  check(images.size === 1, `entitysync containers run ${images.size} images: ${[...images]}`);

  // The hosted gateway: --gateway_address is the container port `gateway`,
  // on the pod's address, apart from the gRPC and metrics ports (Notify and
  // Admin never answer where browsers come in).
  const hostedPort = f.gateway_address === undefined ? undefined : portOf(f.gateway_address);
  if (f.gateway_address !== undefined) {
    check(hostedPort && portNamed("gateway") === hostedPort,
      `--gateway_address ${f.gateway_address} is not container port gateway (${portNamed("gateway")})`);
    check(f.gateway_address.startsWith("0.0.0.0:"),
      `--gateway_address=${f.gateway_address} does not listen on the pod's address`);
    check(![publicPort, internalPort, metricsPort].includes(hostedPort),
      `--gateway_address ${f.gateway_address} shares a port with gRPC or metrics`);
    for (const d of (f.gateway_static ?? "").split(",").filter(Boolean)) {
      check(/^\/[^=]*=\/usr\/share\/entitysync\//.test(d),
        `--gateway_static ${d} is not PREFIX=a directory of the image`);
    }
  } else {
    check(portNamed("gateway") === undefined,
      "entitysync declares container port gateway but runs no --gateway_address");
  }
  const gateway = workloads.find((w) => argv(containersOf(w)[0])[0] === "entitysync-gateway");
  const gatewayPort = gateway && portOf(flagsOf(containersOf(gateway)[0]).address);
  const mode = hostedPort && gateway ? "both" : hostedPort ? "hosted" : gateway ? "standalone" : "none";
  const wantMode = EXPECTED_BROWSERS[current];
  check(wantMode ? mode === wantMode : mode === "hosted" || mode === "standalone",
    `browsers are served by ${mode === "both" ? "both the replicas and entitysync-gateway" : mode === "none" ? "nothing" : `the ${mode} gateway`}, expected ${wantMode ?? "one of hosted or standalone"}`);

  // The public Service has the public port only; the internal one the rest.
  const pub = named("Service", "entitysync-public");
  const internal = named("Service", "entitysync-internal");
  const targets = (s) => (s?.spec.ports ?? []).map((p) => containerPort(server, p.targetPort ?? p.port));
  check(JSON.stringify(targets(pub)) === JSON.stringify([publicPort]),
    `Service entitysync-public exposes ${targets(pub)}, not only the public port ${publicPort}`);
  check(JSON.stringify(targets(internal).sort()) === JSON.stringify([internalPort, metricsPort].sort()),
    `Service entitysync-internal exposes ${targets(internal)}, not the internal and metrics ports`);
  // The browsers' Service: its name and port (http, 8080) are what Ingresses
  // and load balancers name, whichever gateway is behind it; it selects the
  // pods that serve browsers and reaches their gateway port only.
  const browsers = named("Service", "entitysync-gateway");
  if (check(browsers, "no Service entitysync-gateway for browsers") && mode !== "both" && mode !== "none") {
    const ports = browsers.spec.ports ?? [];
    check(ports.length === 1 && ports[0].port === 8080 && ports[0].name === "http",
      `Service entitysync-gateway ports ${JSON.stringify(ports)}, not one port http 8080`);
    const servedBy = mode === "hosted" ? server : gateway;
    const port = mode === "hosted" ? hostedPort : gatewayPort;
    const ws = workloadOf(browsers.spec.selector);
    check(ws.length === 1 && ws[0] === servedBy,
      `Service entitysync-gateway selects ${ws.map(id)}, not ${id(servedBy)} (the ${mode} gateway)`);
    const reached = ports.map((p) => containerPort(servedBy, p.targetPort ?? p.port));
    check(JSON.stringify(reached) === JSON.stringify([port]),
      `Service entitysync-gateway reaches ${id(servedBy)} ports ${reached}, not only its gateway port ${port}`);
  }
  // NetworkPolicy: public port (and the hosted gateway's) from anywhere, the
  // others from this namespace only, nothing else open. Rules add up: a
  // port takes the widest scope any rule gives it.
  const openPorts = (np, w) => {
    const open = new Map();  // port -> "anywhere" | "other" | "namespace"
    const width = { namespace: 0, other: 1, anywhere: 2 };
    for (const rule of np.spec.ingress ?? []) {
      const scope = rule.from === undefined ? "anywhere"
        : rule.from.every((p) => JSON.stringify(p) === '{"podSelector":{}}') ? "namespace" : "other";
      for (const p of rule.ports ?? [{ port: "all" }]) {
        const port = containerPort(w, p.port) ?? p.port;
        if (!open.has(port) || width[scope] > width[open.get(port)]) open.set(port, scope);
      }
    }
    return open;
  };
  const policyOf = (w) => byKind("NetworkPolicy").find((n) => matches(n.spec.podSelector?.matchLabels, podLabels(w)));
  const restrictsIngress = (np) =>
    check((np.spec.policyTypes ?? []).includes("Ingress"), `${id(np)}: does not restrict ingress`);
  const np = policyOf(server);
  if (check(np, "no NetworkPolicy selects the entitysync pods")) {
    restrictsIngress(np);
    const open = openPorts(np, server);
    const toAll = [publicPort, ...(hostedPort ? [hostedPort] : [])];
    for (const p of toAll) {
      check(open.get(p) === "anywhere", `${id(np)}: port ${p} (${p === publicPort ? "public" : "browsers"}) is not open to all`);
    }
    for (const p of [internalPort, metricsPort]) {
      check(open.get(p) === "namespace", `${id(np)}: port ${p} is ${open.get(p) ?? "closed"}, not open to this namespace only`);
    }
    for (const [p] of open) {
      check([...toAll, internalPort, metricsPort].includes(p), `${id(np)}: opens ${p}, which entitysync does not serve`);
    }
  }

  // The standalone gateway: its listen port, its upstream (the public port
  // through a Service), its drain, and browsers only into its pods.
  if (gateway) {
    const gc = containersOf(gateway)[0];
    const gf = flagsOf(gc);
    check(gatewayPort && containerPort(gateway, "gateway") === gatewayPort,
      `gateway --address ${gf.address} is not its container port gateway`);
    check(gf.address?.startsWith("0.0.0.0:"), `gateway --address=${gf.address} does not listen on the pod's address`);
    for (const target of (gf.upstream ?? "").replace(/^(dns:\/\/\/|ipv4:)/, "").split(",")) {
      const [host, port] = target.split(":");
      const t = serviceTarget(host, Number(port));
      if (check(!t.error, `gateway --upstream ${target}: ${t.error}`)) {
        check(t.workload === server && t.containerPort === publicPort,
          `gateway --upstream ${target} does not reach entitysync's public port`);
      }
    }
    const gPreStop = Number(gc.lifecycle?.preStop?.exec?.command?.[1] ?? 0);
    check(podSpec(gateway).terminationGracePeriodSeconds > gPreStop + durationSeconds(gf.shutdown_grace ?? "5s"),
      "gateway: terminationGracePeriodSeconds is not above preStop + --shutdown_grace");
    const gnp = policyOf(gateway);
    if (check(gnp, `no NetworkPolicy selects the ${id(gateway)} pods`)) {
      restrictsIngress(gnp);
      const open = openPorts(gnp, gateway);
      check(open.size === 1 && open.get(gatewayPort) === "anywhere",
        `${id(gnp)}: opens ${JSON.stringify([...open])}, not only the gateway port ${gatewayPort} to all`);
    }
  }

  // NATS clusters: the routes name every pod of the StatefulSet through its
  // headless Service, on the cluster port.
  for (const ss of byKind("StatefulSet")) {
    const nc = containersOf(ss)[0];
    const nf = flagsOf(nc);
    if (argv(nc)[0] !== "nats-server") continue;
    const headless = named("Service", ss.spec.serviceName);
    if (!check(headless?.spec.clusterIP === "None", `${id(ss)}: serviceName ${ss.spec.serviceName} is not a headless Service`)) continue;
    check(headless.spec.publishNotReadyAddresses === true,
      `${id(ss)}: ${ss.spec.serviceName} hides not-ready peers, so the cluster cannot form`);
    const clusterPort = portOf(nf.cluster);
    check(clusterPort && containerPort(ss, "cluster") === clusterPort,
      `${id(ss)}: --cluster=${nf.cluster} is not the container port named cluster`);
    const expected = [...Array(ss.spec.replicas).keys()].map(
      (i) => `nats://${ss.metadata.name}-${i}.${ss.spec.serviceName}:${clusterPort}`);
    check(JSON.stringify((nf.routes ?? "").split(",").sort()) === JSON.stringify(expected.sort()),
      `${id(ss)}: --routes=${nf.routes}, expected ${expected}`);
    check(ss.spec.replicas >= 3, `${id(ss)}: a NATS cluster of ${ss.spec.replicas}`);
  }
  return { server, gateway, mode };
}

// The Dockerfile: what it installs in /usr/local/bin, the directories it
// fills, and its user.
function readDockerfile(file) {
  const text = fs.readFileSync(file, "utf8");
  const binaries = new Set();
  for (const [, b] of text.matchAll(/bazel-bin\/[\w/-]+\/([\w-]+)\s/g)) binaries.add(b);
  const installsToBin = /COPY --from=build \/out\/bin\/ \/usr\/local\/bin\//.test(text);
  if (!installsToBin) binaries.clear();
  const dirs = new Set();
  for (const [, d] of text.matchAll(/COPY [^\n]* (\/usr\/share\/entitysync\/[\w./-]*)/g)) {
    dirs.add(d.replace(/\/$/, ""));
  }
  const user = /^USER (\d+)(?::\d+)?\s*$/m.exec(text);
  // The runtime stage's packages: the apt-get install after the last FROM.
  const runtime = text.slice(text.lastIndexOf("\nFROM "));
  const install = /apt-get install([^]*?)(?:&&|\n\S)/.exec(runtime);
  const packages = new Set(
    (install?.[1] ?? "").split(/[\s\\]+/).filter((w) => w && !w.startsWith("-")));
  return { binaries, dirs, packages, uid: user ? Number(user[1]) : undefined };
}

// The shared libraries a program loads (ldd). Sanitizer runtimes (an ASan
// build) are not the image's.
function librariesOf(program) {
  const ldd = run(["ldd", program]);
  return [...ldd.out.matchAll(/=> (\/\S+)/g)].map((m) => m[1])
    .filter((l) => !/\/lib(asan|ubsan|lsan|tsan)\.so/.test(l));
}

// library path -> its Debian package, with one `dpkg -S` for all (dpkg may
// know a library by its /lib or /usr/lib name, or by its symlink's).
function debianPackages(libs) {
  const names = new Map();  // candidate path -> library
  for (const lib of libs) {
    const candidates = [lib, fs.realpathSync(lib)];
    for (const c of [...candidates]) {
      if (c.startsWith("/usr/lib/")) candidates.push(c.slice(4));
      else if (c.startsWith("/lib/")) candidates.push(`/usr${c}`);
    }
    for (const c of candidates) names.set(c, lib);
  }
  const r = run(["dpkg", "-S", ...names.keys()], 30000);
  const owner = new Map();
  for (const [, pkg, file] of r.out.matchAll(/^([^:\s,]+)(?::[\w-]+)?: (\/\S+)$/gm)) {
    if (names.has(file)) owner.set(names.get(file), pkg);
  }
  return owner;
}

// Every library the programs load comes from a package the runtime stage
// installs (or one debian:bookworm-slim has: libc6, libgcc-s1, libstdc++6).
function checkRuntimeLibraries(dockerfile) {
  const inSlim = new Set(["libc6", "libgcc-s1", "libstdc++6"]);
  const local = {
    "entitysync-server": BINARIES["entitysync-server"],
    "entitysync-gateway": BINARIES["entitysync-gateway"],
    "entitysync-webhook": BINARIES["entitysync-webhook"],
    items: BINARIES.items,
    entitysync: BINARIES.entitysync,
    "grpc-health-check": BINARIES["grpc-health-check"],
  };
  const libs = new Map();  // library -> the programs that load it
  for (const name of dockerfile.binaries) {
    if (!local[name]) continue;
    for (const lib of librariesOf(local[name])) {
      libs.set(lib, [...(libs.get(lib) ?? []), name]);
    }
  }
  const owner = debianPackages([...libs.keys()]);
  const needed = new Set();
  for (const [lib, programs] of libs) {
    const p = owner.get(lib);
    if (!check(p, `${programs} load ${lib}, which no Debian package owns`)) continue;
    needed.add(p);
    check(dockerfile.packages.has(p) || inSlim.has(p),
      `${programs} need ${p} (for ${path.basename(lib)}), which the runtime stage does not install`);
  }
  note(`runtime libraries: ${[...needed].sort().join(" ")}`);
}

// ------------------------------------------------------------------ 3. run
async function freePorts(n) {
  const servers = [];
  for (let i = 0; i < n; i++) {
    const s = net.createServer();
    await new Promise((r) => s.listen(0, "127.0.0.1", r));
    servers.push(s);
  }
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

const children = [];
process.on("exit", () => {
  for (const ch of children) if (ch.exitCode === null) ch.kill("SIGKILL");
});

function start(name, args, log, env = {}) {
  const out = fs.openSync(log, "a");
  const child = spawn(args[0], args.slice(1), {
    stdio: ["ignore", out, out],
    env: { ...process.env, ...env },
  });
  fs.closeSync(out);
  child.label = name;
  child.log = log;
  child.exited = new Promise((r) => child.on("exit", (code, signal) => r({ code, signal })));
  child.on("error", (e) => fs.appendFileSync(log, `spawn error: ${e}\n`));
  children.push(child);
  return child;
}

function run(args, timeoutMs = 10000) {
  const r = spawnSync(args[0], args.slice(1), { encoding: "utf8", timeout: timeoutMs });
  return { code: r.status, out: (r.stdout ?? "") + (r.stderr ?? "") };
}

function httpGet(port, p) {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: p, timeout: 2000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("error", (e) => resolve({ status: 0, body: String(e) }));
    req.on("timeout", () => req.destroy(new Error("timeout")));
  });
}

async function until(what, fn, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last.ok || last.done) return last;
    await sleep(200);
  }
  return last ?? { ok: false, detail: `${what}: never tried` };
}

// The kubelet's view of a probe, against the loopback port.
async function probe(p, ports) {
  if (p.grpc) {
    const args = [BINARIES["grpc-health-check"], "--timeout=2"];
    if (p.grpc.service) args.push(`--service=${p.grpc.service}`);
    args.push(`127.0.0.1:${ports.get(p.grpc.port)}`);
    const r = run(args);
    return { ok: r.code === 0, detail: `gRPC health on ${p.grpc.port}: ${r.out.trim()}` };
  }
  if (p.httpGet) {
    const r = await httpGet(ports.get(p.httpGet.port), p.httpGet.path ?? "/");
    return { ok: r.status >= 200 && r.status < 400, detail: `GET ${p.httpGet.path} on ${p.httpGet.port}: ${r.status}` };
  }
  return { ok: false, detail: `unsupported probe ${JSON.stringify(p)}` };
}

async function runOverlay(objects, wiring, dir) {
  const workloads = objects.filter(isWorkload);
  const named = (k, n) => objects.find((o) => o.kind === k && o.metadata?.name === n);
  // One pod per Deployment, every pod of a StatefulSet (a cluster).
  const pods = [];
  for (const w of workloads) {
    const n = w.kind === "StatefulSet" ? w.spec.replicas : 1;
    for (let i = 0; i < n; i++) {
      pods.push({ workload: w, name: w.kind === "StatefulSet" ? `${w.metadata.name}-${i}` : `${w.metadata.name}-pod`, index: i });
    }
  }
  for (const pod of pods) {
    const cps = allContainersOf(pod.workload).flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));
    const free = await freePorts(cps.length);
    pod.ports = new Map(cps.map((p, i) => [p, free[i]]));
    for (const c of allContainersOf(pod.workload)) {
      for (const p of c.ports ?? []) if (p.name) pod.ports.set(p.name, pod.ports.get(p.containerPort));
    }
    pod.dir = path.join(dir, pod.name);
    fs.mkdirSync(pod.dir, { recursive: true });
  }
  // HOST:PORT as the pod would dial it -> 127.0.0.1:PORT of the process.
  const resolve = (host, port, self) => {
    if (host === "0.0.0.0") return self.ports.get(port);
    const [first, second] = host.split(".");
    const svc = named("Service", second && named("Service", second) ? second : first);
    if (!svc) return undefined;
    const sp = (svc.spec.ports ?? []).find((p) => p.port === port);
    if (!sp) return undefined;
    const candidates = pods.filter((p) => matches(svc.spec.selector, podLabels(p.workload)));
    const pod = second && svc.metadata.name === second
      ? candidates.find((p) => p.name === first)
      : candidates[0];
    if (!pod) return undefined;
    return pod.ports.get(sp.targetPort ?? sp.port);
  };
  const rewrite = (text, self, declared) =>
    text
      .replace(/([a-z0-9][a-z0-9.-]*):(\d+)\b/g, (all, host, port) => {
        const local = resolve(host, Number(port), self);
        return local ? `127.0.0.1:${local}` : all;
      })
      // Bare port flags (nats-server --port=4222): container ports too.
      .replace(/^(--?[\w-]+=)(\d+)$/, (all, flag, port) =>
        declared.has(Number(port)) ? `${flag}${self.ports.get(Number(port))}` : all);

  // Files and directories: volumes become directories; image paths
  // (/usr/share/entitysync/...) become directories with a marker page.
  const imageDirs = new Map();
  for (const pod of pods) {
    pod.mounts = new Map();
    for (const v of podSpec(pod.workload).volumes ?? []) {
      const d = path.join(pod.dir, "volumes", v.name);
      fs.mkdirSync(d, { recursive: true });
      if (v.configMap) {
        const cm = named("ConfigMap", v.configMap.name);
        for (const [k, text] of Object.entries(cm?.data ?? {})) {
          fs.writeFileSync(path.join(d, k), rewrite(text, pod, new Set()));
        }
      }
      pod.volumes = { ...(pod.volumes ?? {}), [v.name]: d };
    }
  }
  const localArgs = (pod, c) => {
    const declared = new Set((c.ports ?? []).map((p) => p.containerPort));
    const env = {};
    for (const e of c.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom?.fieldRef?.fieldPath === "metadata.name") env[e.name] = pod.name;
    }
    return argv(c).map((a) => {
      let s = a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, v) => env[v] ?? all);
      s = rewrite(s, pod, declared);
      for (const m of c.volumeMounts ?? []) {
        s = s.split(m.mountPath.replace(/\/$/, "")).join(pod.volumes[m.name]);
      }
      s = s.replace(/\/usr\/share\/entitysync\/[\w.-]+/g, (p) => {
        if (!imageDirs.has(p)) {
          const d = path.join(dir, "image", p);
          fs.mkdirSync(d, { recursive: true });
          fs.writeFileSync(path.join(d, "index.html"), `marker ${p}\n`);
          imageDirs.set(p, d);
        }
        return imageDirs.get(p);
      });
      return s;
    });
  };

  // Init containers to completion, then every container.
  const started = [];
  for (const pod of pods) {
    for (const c of podSpec(pod.workload).initContainers ?? []) {
      const args = localArgs(pod, c);
      const r = run([BINARIES[args[0]] ?? args[0], ...args.slice(1)]);
      check(r.code === 0, `${pod.name} init container ${c.name} (${args.join(" ")}) exited ${r.code}: ${r.out}`);
    }
  }
  for (const pod of pods) {
    for (const c of containersOf(pod.workload)) {
      const args = localArgs(pod, c);
      const local = [BINARIES[args[0]] ?? args[0], ...args.slice(1)];
      const log = path.join(pod.dir, `${c.name}.log`);
      fs.writeFileSync(log, `$ ${local.join(" ")}\n`);
      started.push({ pod, container: c, process: start(`${pod.name}/${c.name}`, local, log) });
    }
  }
  note(`started ${started.map((s) => s.process.label).join(", ")}`);
  // Every probe answers as the kubelet expects, once the pod is up.
  let probes = 0;
  for (const { pod, container: c, process: p } of started) {
    for (const kind of ["readinessProbe", "livenessProbe"]) {
      const pr = c[kind];
      if (!pr) continue;
      probes++;
      const r = await until(`${pod.name} ${kind}`, async () =>
        p.exitCode !== null ? { ok: false, detail: `exited with ${p.exitCode}`, done: true } : probe(pr, pod.ports));
      check(r.ok, `${pod.name}/${c.name} ${kind}: ${r.detail}\n${tail(p.log)}`);
    }
  }
  note(`${probes} probes asked`);
  // Declared ports all listen.
  for (const { pod, container: c, process: p } of started) {
    for (const port of c.ports ?? []) {
      const ok = await until(`${pod.name} port ${port.containerPort}`, async () => ({
        ok: await new Promise((r) => {
          const s = net.connect(pod.ports.get(port.containerPort), "127.0.0.1");
          s.on("connect", () => { s.destroy(); r(true); });
          s.on("error", () => r(false));
        }),
      }), 10000);
      check(ok.ok, `${pod.name}/${c.name}: nothing listens on container port ${port.name ?? port.containerPort}\n${tail(p.log)}`);
    }
  }

  const serverPod = pods.find((p) => p.workload === wiring.server);
  const serverProc = started.find((s) => s.pod === serverPod).process;
  // Metrics: Prometheus text on GET /metrics.
  {
    const r = await httpGet(serverPod.ports.get("metrics"), "/metrics");
    check(r.status === 200 && /^# (HELP|TYPE) entitysync_/m.test(r.body), `GET /metrics on the metrics port: ${r.status} ${r.body.slice(0, 200)}`);
  }
  // The resolver table works as mounted: a subscriber gets item 100.
  const sub = run([BINARIES.entitysync, `--target=127.0.0.1:${serverPod.ports.get("grpc-public")}`,
    "subscribe", "--count=1", "--timeout=10", "items/100"], 15000);
  if (check(sub.code === 0 && /"id":"100"/.test(sub.out),
    `subscribe items/100 through the mounted resolver table: ${sub.out}\n${tail(serverProc.log)}`)) {
    note("a subscriber got items/100 through the mounted resolver table");
  }
  // Browsers, through the Service entitysync-gateway as a load balancer
  // would dial it: the demo page (the directories the manifest names), the
  // gateway's health, and a WebSocket that gets item 100 (hosted: from the
  // replica's session core; standalone: through the gateway's Subscribe).
  const browserPort = resolve("entitysync-gateway", 8080, serverPod);
  const browserProc = started.find((s) => s.pod.workload === (wiring.mode === "hosted" ? wiring.server : wiring.gateway))?.process;
  let browser;
  if (check(browserPort, "Service entitysync-gateway:8080 leads to no pod")) {
    const page = await httpGet(browserPort, "/");
    check(page.status === 200 && /^marker /.test(page.body), `GET / through Service entitysync-gateway: ${page.status} ${page.body.slice(0, 100)}`);
    const health = await httpGet(browserPort, "/healthz");
    check(health.status === 200, `GET /healthz through Service entitysync-gateway: ${health.status} ${health.body.slice(0, 100)}`);
    browser = await browserSubscribe(browserPort, { entity: "items", id: "100" });
    if (check(browser.ok, `a browser's WebSocket through Service entitysync-gateway: ${browser.detail}\n${tail(browserProc?.log ?? serverProc.log)}`)) {
      note(`a browser got items/100 through Service entitysync-gateway (${wiring.mode} gateway)`);
    }
  }
  // NATS clusters: every server has a route to every other.
  for (const ss of workloads.filter((w) => w.kind === "StatefulSet")) {
    const members = pods.filter((p) => p.workload === ss);
    for (const m of members) {
      const r = await until(`${m.name} routes`, async () => {
        const res = await httpGet(m.ports.get("monitor"), "/routez");
        let n = -1;
        try { n = JSON.parse(res.body).num_routes; } catch {}
        return { ok: n === members.length - 1, detail: `num_routes ${n}` };
      });
      check(r.ok, `${m.name}: cluster routes: ${r.detail}, expected ${members.length - 1}`);
    }
    note(`${id(ss)}: ${members.length} servers routed to each other`);
  }
  // SIGTERM drains and exits 0 within --shutdown_grace (+ slack).
  const grace = durationSeconds(flagsOf(containersOf(wiring.server)[0]).shutdown_grace ?? "10s");
  const t0 = Date.now();
  serverProc.kill("SIGTERM");
  const exit = await Promise.race([serverProc.exited, sleep((grace + 5) * 1000).then(() => null)]);
  check(exit && exit.code === 0, `entitysync-server after SIGTERM: ${JSON.stringify(exit)} (grace ${grace}s)\n${tail(serverProc.log)}`);
  note(`entitysync-server drained on SIGTERM: exit ${exit?.code} after ${Date.now() - t0} ms`);
  // Its browser was told to reconnect elsewhere (1012), not dropped.
  if (browser?.ok) {
    const closed = await Promise.race([browser.closed, sleep(3000).then(() => null)]);
    check(closed?.code === 1012, `the browser's WebSocket when its replica drained: ${closed ? `closed ${closed.code} ${closed.reason}` : "still open"}, expected 1012`);
    if (closed?.code === 1012) note("its browser was closed with 1012 (reconnect) by the drain");
    browser.ws.terminate();
  }
  for (const s of started) if (s.process.exitCode === null) s.process.kill("SIGTERM");
  await Promise.race([Promise.all(started.map((s) => s.process.exited)), sleep(8000)]);
  for (const s of started) if (s.process.exitCode === null) s.process.kill("SIGKILL");
}

// A browser in the gateway's enveloped JSON mode: subscribes to `key` and
// waits for its first update. `closed` resolves with the close code.
function browserSubscribe(port, key, timeoutMs = 10000) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/entity-sync/`, ["entitysync.v1.json"]);
  const closed = new Promise((r) => ws.on("close", (code, reason) => r({ code, reason: String(reason) })));
  const seen = [];
  return new Promise((resolve) => {
    const done = (r) => { clearTimeout(timer); resolve({ ...r, ws, closed }); };
    const timer = setTimeout(() => done({ ok: false, detail: `no update within ${timeoutMs} ms (got ${seen})` }), timeoutMs);
    ws.on("open", () => ws.send(JSON.stringify({ action: "subscribe", request_id: 1, body: key })));
    ws.on("message", (data) => {
      let m;
      try { m = JSON.parse(String(data)); } catch { m = { type: `non-JSON ${String(data).slice(0, 80)}` }; }
      seen.push(m.type);
      if (m.type === "update" && m.key?.entity === key.entity && m.key?.id === key.id) {
        const body = JSON.stringify(m.rows ?? []);
        done(m.rows?.length > 0 && body.includes(`"id":"${key.id}"`)
          ? { ok: true } : { ok: false, detail: `update without the item: ${body.slice(0, 200)}` });
      } else if (m.type === "error") {
        done({ ok: false, detail: JSON.stringify(m) });
      }
    });
    ws.on("error", (e) => done({ ok: false, detail: String(e) }));
    closed.then((c) => done({ ok: false, detail: `closed ${c.code} ${c.reason} (got ${seen})` }));
  });
}

// Free ports are picked, released, then bound by the processes, so another
// process (a test running beside this one) can take one in between. A run
// in which a process could not bind is run again on new ports (three runs
// at most); any other failure counts at once.
async function runOverlayRetrying(objects, wiring, dir) {
  for (let attempt = 1; ; attempt++) {
    const attemptDir = path.join(dir, `run${attempt}`);
    held = [];
    let found;
    try {
      await runOverlay(objects, wiring, attemptDir);
    } finally {
      found = held;
      held = null;
    }
    if (found.length === 0) return;
    if (attempt === 3 || !logsMatch(attemptDir, /address already in use/i)) {
      for (const msg of found) fail(msg);
      return;
    }
    note(`run ${attempt}: a port was taken before its process bound it (${found.length} failures); again on new ports`);
  }
}

function logsMatch(dir, re) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() ? logsMatch(p, re) : e.name.endsWith(".log") && re.test(fs.readFileSync(p, "utf8"))) return true;
  }
  return false;
}

function tail(log, n = 15) {
  try {
    return fs.readFileSync(log, "utf8").trimEnd().split("\n").slice(-n).map((l) => `    | ${l}`).join("\n");
  } catch {
    return "";
  }
}

// ------------------------------------------------------------------ main
const dockerfile = readDockerfile(opts.dockerfile);
current = "Dockerfile";
check(dockerfile.binaries.size >= 4, `installs ${[...dockerfile.binaries]} in /usr/local/bin`);
check(dockerfile.uid > 0, "USER is not a numeric non-root user");
checkRuntimeLibraries(dockerfile);

for (const overlay of opts.overlays) {
  current = overlay.name;
  const t0 = Date.now();
  const docs = parseAllDocuments(fs.readFileSync(overlay.file, "utf8"));
  const objects = [];
  for (const d of docs) {
    if (d.errors.length) fail(`YAML: ${d.errors.map((e) => e.message)}`);
    const o = d.toJS();
    if (o) objects.push(o);
  }
  note(`${objects.length} objects: ${objects.map(id).join(", ")}`);
  check(objects.length > 0, "renders nothing");
  const before = failures;
  await validateSchemas(objects);
  const dir = path.join(opts.tmp, overlay.name);
  fs.mkdirSync(dir, { recursive: true });
  strictTypes(objects, dir);
  note(`schemas: ${failures === before ? "all valid" : "INVALID"} (${Date.now() - t0} ms)`);
  const wiring = checkWiring(objects, dockerfile);
  if (wiring && failures === before) {
    await runOverlayRetrying(objects, wiring, dir);
  } else if (wiring) {
    note("not starting the binaries: fix the failures above first");
  }
  note(`done in ${Date.now() - t0} ms`);
}
console.log(failures === 0 ? "manifests: all checks passed" : `manifests: ${failures} failure(s)`);
process.exit(failures === 0 ? 0 : 1);
