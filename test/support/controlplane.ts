/**
 * A real local Kubernetes control plane for integration tests: etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler and KWOK (fake kubelets), all on 127.0.0.1 with
 * free ports, from the binaries scripts/controlplane/build.sh builds and caches.
 *
 *   const cp = await startControlPlane();
 *   t.teardown(() => cp.stop());
 *   await cp.createFakeNodes([{ name: 'node-a' }]);
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig, type V1Node } from '@kubernetes/client-node';
import { stringify as toYaml } from 'yaml';

export type Component =
  | 'etcd'
  | 'kube-apiserver'
  | 'kube-controller-manager'
  | 'kube-scheduler'
  | 'kwok';

export interface ControlPlaneOptions {
  /** Directory holding the binaries; default: ensureBinaries(). */
  binDir?: string;
  /** Bound on each component's start-up wait. Default 60 s. */
  startTimeoutMs?: number;
  /**
   * kube-controller-manager --controllers. The default leaves out the node lifecycle
   * controller, which would taint and evict KWOK nodes whenever their heartbeat lags.
   */
  controllers?: string;
  /** Extra flags appended per component (later flags win). */
  extraArgs?: Partial<Record<Component, string[]>>;
  /**
   * A KubeSchedulerConfiguration to run kube-scheduler with (e.g. profiles, client rate limits).
   * Given a config file the scheduler ignores --kubeconfig and --leader-elect, so those two are
   * filled in here: clientConnection.kubeconfig and leaderElection.leaderElect=false.
   */
  schedulerConfig?: Record<string, unknown>;
  /** Keep the temp dir after stop() for debugging (also env SHC_KEEP_CONTROLPLANE=1). */
  keepDir?: boolean;
}

export interface FakeNodeSpec {
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  providerID?: string;
  /** Default: cpu 32, memory 128Gi, pods 110, ephemeral-storage 100Gi. */
  allocatable?: Record<string, string>;
}

export interface KubectlOptions {
  /** Written to kubectl's stdin (e.g. for `apply -f -`). */
  input?: string;
  /** Use this kubeconfig instead of the admin one. */
  kubeconfig?: string;
  /** Default 60 s; the process is killed after it and code is -1. */
  timeoutMs?: number;
}

export interface CommandResult {
  stdout: string;
  stderr: string;
  /** Exit code; -1 when killed or not started. */
  code: number;
}

/** The fields of an audit.k8s.io/v1 Event that Metadata level records. */
export interface AuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string; groups?: string[] };
  objectRef?: {
    resource?: string;
    subresource?: string;
    namespace?: string;
    name?: string;
    apiGroup?: string;
    apiVersion?: string;
  };
  responseStatus?: { code?: number; reason?: string; message?: string };
  requestReceivedTimestamp?: string;
}

export interface ControlPlane {
  /** Temp dir holding PKI, kubeconfigs, data and logs; removed by stop(). */
  readonly dir: string;
  readonly binDir: string;
  /** https://127.0.0.1:PORT */
  readonly server: string;
  /** Admin kubeconfig (client cert in group system:masters). */
  readonly kubeconfigPath: string;
  /** CA that signed the serving and admin certs. */
  readonly caPath: string;
  /** Static bearer token in group system:masters (for plain HTTPS clients). */
  readonly adminToken: string;
  readonly auditLogPath: string;
  readonly logDir: string;
  /** Admin KubeConfig for @kubernetes/client-node. */
  kubeConfig(): KubeConfig;
  kubectl(args: string[], opts?: KubectlOptions): Promise<CommandResult>;
  /** Creates KWOK-managed nodes and waits until each is Ready. */
  createFakeNodes(specs: FakeNodeSpec[], timeoutMs?: number): Promise<V1Node[]>;
  /** Writes a kubeconfig authenticating with a (ServiceAccount) bearer token; returns filePath. */
  kubeconfigForToken(token: string, filePath: string): string;
  /** Parses the audit log written so far. */
  readAuditEvents(): AuditEvent[];
  /** Last lines of a component's log. */
  logTail(component: Component, lines?: number): string;
  /** Kills every process (whole process groups) and removes dir. Idempotent. */
  stop(): Promise<void>;
}

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILD_SCRIPT = path.join(REPO_ROOT, 'scripts', 'controlplane', 'build.sh');
const REQUIRED_BINARIES = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubectl',
  'kwok',
] as const;
export const HOW_TO_PROVIDE_BINARIES =
  'Run `bash scripts/controlplane/build.sh` (needs Go >= 1.26 and the Go module proxy; ' +
  'builds once into ~/.cache/self-healing-controller) or set SHC_K8S_ASSETS=/dir holding ' +
  'etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (and kwok).';
const KWOK_ANNOTATION = 'kwok.x-k8s.io/node';
const MIN_POLL_MS = 200;

// ---------------------------------------------------------------------------------------
// Binaries

let binaries: Promise<string> | undefined;

/** Runs build.sh (a second or so once built) and returns the bin dir; rejects if it can't. */
export function ensureBinaries(): Promise<string> {
  binaries ??= buildBinaries();
  return binaries;
}

async function buildBinaries(): Promise<string> {
  // The first build takes many minutes; echo its progress so a waiting run is not silent.
  const res = await run('bash', [BUILD_SCRIPT], { timeoutMs: 90 * 60_000, echoStderr: true });
  const binDir = res.stdout.trim().split('\n').pop() ?? '';
  if (res.code !== 0 || binDir === '') {
    binaries = undefined; // let a later call retry
    throw new Error(
      `control plane binaries are not available (build.sh exited ${res.code}):\n` +
        `${lastLines(res.stderr, 15)}\n${HOW_TO_PROVIDE_BINARIES}`,
    );
  }
  assertBinaries(binDir);
  return binDir;
}

/**
 * For test files: the bin dir, or a skip reason outside CI. Under CI=true a missing
 * control plane is a failure, never a silent skip.
 */
export async function binariesForTest(): Promise<{ binDir: string; skip?: undefined } | { binDir?: undefined; skip: string }> {
  try {
    return { binDir: await ensureBinaries() };
  } catch (err) {
    if (isCI()) throw err;
    return { skip: (err as Error).message };
  }
}

function isCI(): boolean {
  return /^(1|true|yes)$/i.test(process.env.CI ?? '');
}

function assertBinaries(binDir: string): void {
  const missing = REQUIRED_BINARIES.filter((b) => !isExecutable(path.join(binDir, b)));
  if (missing.length > 0) {
    throw new Error(`${binDir} lacks ${missing.join(', ')}. ${HOW_TO_PROVIDE_BINARIES}`);
  }
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// Small helpers

export interface WaitOptions {
  /** Default 30 s. */
  timeoutMs?: number;
  /** Default 250 ms, never below 200 ms. */
  intervalMs?: number;
}

/**
 * Polls probe until it returns something other than undefined, null or false, and returns
 * that. A probe that throws ends the wait with its error; running out of time throws.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  opts: WaitOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const intervalMs = Math.max(MIN_POLL_MS, opts.intervalMs ?? 250);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() + intervalMs > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(intervalMs);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

interface RunOptions {
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  echoStderr?: boolean;
}

/** Runs a short-lived command to completion; never throws. */
function run(file: string, args: string[], opts: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (opts.echoStderr) process.stderr.write(d);
    });
    const timer = setTimeout(() => {
      stderr += `\n[${path.basename(file)} killed after ${opts.timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ stdout, stderr: `${stderr}${err.message}`, code: -1 });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code: code ?? -1 });
    });
    child.stdin.on('error', () => {}); // the command may exit before reading its input
    child.stdin.end(opts.input ?? '');
  });
}

/** Distinct free loopback ports: all listeners stay open until every port is known. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => listenOnFreePort()),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

function listenOnFreePort(): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

interface ProbeOptions {
  ca?: Buffer;
  token?: string;
  /** For components serving a self-signed cert we did not issue (controller-manager, scheduler). */
  insecure?: boolean;
}

/** HTTP status of a GET, or 0 when the server is not answering yet. */
function httpStatus(url: string, opts: ProbeOptions = {}): Promise<number> {
  return new Promise((resolve) => {
    const reqOpts: https.RequestOptions = {
      timeout: 2_000,
      headers: opts.token ? { Authorization: `Bearer ${opts.token}` } : {},
      ca: opts.ca,
      rejectUnauthorized: !opts.insecure,
    };
    const get = url.startsWith('https:') ? https.get : http.get;
    const req = get(url, reqOpts, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
  });
}

// ---------------------------------------------------------------------------------------
// PKI (openssl): one CA signs the serving cert and the admin client cert.

interface Pki {
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  saKey: string;
  saPub: string;
}

const OPENSSL_CONFIG = `[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[serving]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
`;

// EC P-256 keys: generating them takes milliseconds, unlike RSA.
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(args: string[]): Promise<void> {
  const res = await run('openssl', args, { timeoutMs: 30_000 });
  if (res.code !== 0) throw new Error(`openssl ${args[0]} failed: ${res.stderr.trim()}`);
}

async function generatePki(dir: string): Promise<Pki> {
  fs.mkdirSync(dir, { recursive: true });
  const f = (name: string) => path.join(dir, name);
  const cnf = f('openssl.cnf');
  fs.writeFileSync(cnf, OPENSSL_CONFIG);
  const pki: Pki = {
    caCert: f('ca.crt'),
    caKey: f('ca.key'),
    servingCert: f('serving.crt'),
    servingKey: f('serving.key'),
    adminCert: f('admin.crt'),
    adminKey: f('admin.key'),
    saKey: f('sa.key'),
    saPub: f('sa.pub'),
  };
  await openssl(['req', '-x509', ...EC_KEY, '-keyout', pki.caKey, '-out', pki.caCert,
    '-subj', '/CN=shc-test-ca', '-days', '3650', '-config', cnf, '-extensions', 'ca']);
  await Promise.all([
    issueCert(pki, cnf, 'serving', '/CN=kube-apiserver', 2),
    issueCert(pki, cnf, 'admin', '/O=system:masters/CN=shc-admin', 3),
    // RSA for ServiceAccount tokens: RS256 is what every JWT consumer accepts.
    openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', pki.saKey])
      .then(() => openssl(['pkey', '-in', pki.saKey, '-pubout', '-out', pki.saPub])),
  ]);
  return pki;
}

async function issueCert(pki: Pki, cnf: string, name: 'serving' | 'admin', subject: string, serial: number): Promise<void> {
  const dir = path.dirname(cnf);
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const crt = path.join(dir, `${name}.crt`);
  await openssl(['req', '-new', ...EC_KEY, '-keyout', key, '-out', csr, '-subj', subject, '-config', cnf]);
  await openssl(['x509', '-req', '-in', csr, '-CA', pki.caCert, '-CAkey', pki.caKey,
    '-set_serial', String(serial), '-days', '3650', '-out', crt,
    '-extfile', cnf, '-extensions', name === 'serving' ? 'serving' : 'client']);
}

// ---------------------------------------------------------------------------------------
// Config files

function kubeconfigYaml(server: string, caPem: string, user: Record<string, string>): string {
  return toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'shc-test', cluster: { server, 'certificate-authority-data': b64(caPem) } }],
    users: [{ name: 'shc-test-user', user }],
    contexts: [{ name: 'shc-test', context: { cluster: 'shc-test', user: 'shc-test-user', namespace: 'default' } }],
    'current-context': 'shc-test',
  });
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}

// Metadata level for everything: who did what to which object, and the response code.
// RequestReceived is omitted so each request appears once, with its outcome.
const AUDIT_POLICY = toYaml({
  apiVersion: 'audit.k8s.io/v1',
  kind: 'Policy',
  omitStages: ['RequestReceived'],
  rules: [{ level: 'Metadata' }],
});

// ---------------------------------------------------------------------------------------
// Processes

interface Proc {
  name: Component | 'watchdog';
  child: ChildProcess;
  logPath: string;
  /** Set once the process has exited (or failed to start). */
  exited?: string;
  exit: Promise<void>;
}

/** One control plane's processes and dir, tracked so exit/signal hooks can clean up. */
interface Running {
  dir: string;
  keepDir: boolean;
  procs: Proc[];
  stopped: boolean;
}

const live = new Set<Running>();

/** Starts a daemon in its own process group (so its children die with it), logging to a file. */
function launch(
  running: Running,
  name: Proc['name'],
  file: string,
  args: string[],
  logPath: string,
  env: NodeJS.ProcessEnv = {},
): Proc {
  const fd = fs.openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(file, args, { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
  } finally {
    fs.closeSync(fd);
  }
  const proc: Proc = { name, child, logPath, exit: Promise.resolve() };
  proc.exit = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      proc.exited ??= `exited with ${signal ?? `code ${code}`}`;
      resolve();
    });
    child.once('error', (err) => {
      proc.exited ??= `failed to start: ${err.message}`;
      resolve();
    });
  });
  // Daemons must never keep the test process alive; stop() or the exit hooks end them.
  child.unref();
  running.procs.push(proc);
  // The watchdog reads this list; it must not list (and kill) itself.
  if (child.pid !== undefined && name !== 'watchdog') {
    fs.appendFileSync(path.join(running.dir, 'pgids'), `${child.pid}\n`);
  }
  return proc;
}

/**
 * Last line of defence when the test process dies without running any hook (SIGKILL):
 * a shell that waits for this process to vanish, then kills the recorded groups
 * (dash: `kill -KILL -PGID`; its kill takes no `--`).
 */
function launchWatchdog(running: Running): void {
  const script =
    'while kill -0 "$1" 2>/dev/null; do sleep 1; done; ' +
    'for g in $(cat "$2/pgids" 2>/dev/null); do kill -KILL "-$g" 2>/dev/null; done; ' +
    '[ "$3" = keep ] || rm -rf "$2"';
  launch(running, 'watchdog', 'sh', ['-c', script, 'shc-controlplane-watchdog', String(process.pid),
    running.dir, running.keepDir ? 'keep' : 'remove'], '/dev/null');
}

function signalGroup(proc: Proc, signal: NodeJS.Signals): void {
  if (proc.exited !== undefined || proc.child.pid === undefined) return;
  try {
    process.kill(-proc.child.pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

async function stopRunning(running: Running): Promise<void> {
  if (running.stopped) return;
  running.stopped = true;
  // SIGKILL at once: all state is disposable, and a graceful kube-apiserver/etcd shutdown
  // takes ~8 s. The audit log needs no flush (blocking mode writes each event directly).
  for (const p of running.procs) signalGroup(p, 'SIGKILL');
  await Promise.race([Promise.all(running.procs.map((p) => p.exit)), sleep(5_000)]);
  removeDir(running);
  live.delete(running);
  if (live.size === 0) uninstallHooks();
}

function removeDir(running: Running): void {
  if (running.keepDir) {
    process.stderr.write(`controlplane: kept ${running.dir}\n`);
    return;
  }
  fs.rmSync(running.dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Synchronous: the only kind of work an 'exit' handler can do. */
function killAllSync(): void {
  for (const running of live) {
    running.stopped = true;
    for (const p of running.procs) signalGroup(p, 'SIGKILL');
    try {
      removeDir(running);
    } catch {
      // best effort while exiting
    }
  }
  live.clear();
}

const HOOK_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let hooksInstalled = false;

function onSignal(signal: NodeJS.Signals): void {
  killAllSync();
  uninstallHooks();
  // Re-raise so the process still dies of the signal, unless someone else handles it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllSync);
  for (const s of HOOK_SIGNALS) process.on(s, onSignal);
}

function uninstallHooks(): void {
  if (!hooksInstalled) return;
  hooksInstalled = false;
  process.off('exit', killAllSync);
  for (const s of HOOK_SIGNALS) process.off(s, onSignal);
}

function tailOf(proc: Proc, lines = 30): string {
  try {
    return lastLines(fs.readFileSync(proc.logPath, 'utf8'), lines);
  } catch {
    return '(no log)';
  }
}

/** Waits until url answers 200; fails at once, with the log tail, if the process died. */
async function waitHealthy(proc: Proc, url: string, probe: ProbeOptions, timeoutMs: number): Promise<void> {
  try {
    await waitFor(`${proc.name} to answer 200 on ${url}`, async () => {
      if (proc.exited !== undefined) throw new Error(`${proc.name} ${proc.exited}`);
      return (await httpStatus(url, probe)) === 200;
    }, { timeoutMs });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- last lines of ${proc.logPath} ---\n${tailOf(proc)}`);
  }
}

// ---------------------------------------------------------------------------------------
// Components

interface Layout {
  dir: string;
  binDir: string;
  logDir: string;
  pki: Pki;
  ports: { etcdClient: number; etcdPeer: number; apiserver: number; kcm: number; scheduler: number; kwok: number };
  kubeconfigPath: string;
  auditLogPath: string;
  adminToken: string;
  options: ControlPlaneOptions;
}

function bin(layout: Layout, name: string): string {
  return path.join(layout.binDir, name);
}

function logFile(layout: Layout, name: Component): string {
  return path.join(layout.logDir, `${name}.log`);
}

function extra(layout: Layout, name: Component): string[] {
  return layout.options.extraArgs?.[name] ?? [];
}

function startEtcd(running: Running, l: Layout): Proc {
  const client = `http://127.0.0.1:${l.ports.etcdClient}`;
  const peer = `http://127.0.0.1:${l.ports.etcdPeer}`;
  return launch(running, 'etcd', bin(l, 'etcd'), [
    '--name=shc-test',
    `--data-dir=${path.join(l.dir, 'etcd')}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=shc-test=${peer}`,
    // Test data is thrown away: skipping fsync makes every write much faster.
    '--unsafe-no-fsync=true',
    '--log-level=warn',
    ...extra(l, 'etcd'),
  ], logFile(l, 'etcd'));
}

function startApiserver(running: Running, l: Layout): Proc {
  const policy = path.join(l.dir, 'audit-policy.yaml');
  fs.writeFileSync(policy, AUDIT_POLICY);
  const tokens = path.join(l.dir, 'tokens.csv');
  fs.writeFileSync(tokens, `${l.adminToken},shc-admin-token,shc-admin-token,"system:masters"\n`);
  return launch(running, 'kube-apiserver', bin(l, 'kube-apiserver'), [
    `--etcd-servers=http://127.0.0.1:${l.ports.etcdClient}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${l.ports.apiserver}`,
    `--cert-dir=${path.join(l.dir, 'apiserver-certs')}`,
    `--tls-cert-file=${l.pki.servingCert}`,
    `--tls-private-key-file=${l.pki.servingKey}`,
    `--client-ca-file=${l.pki.caCert}`,
    `--token-auth-file=${tokens}`,
    '--authorization-mode=RBAC',
    '--service-cluster-ip-range=10.0.0.0/24',
    '--allow-privileged=true',
    `--service-account-issuer=https://127.0.0.1:${l.ports.apiserver}`,
    `--service-account-key-file=${l.pki.saPub}`,
    `--service-account-signing-key-file=${l.pki.saKey}`,
    // ServiceAccount: no token volumes in pods; KWOK runs no containers to use them.
    // TaintNodesByCondition: it taints every new node not-ready:NoSchedule and only the
    // node lifecycle controller (off by default here, see DEFAULT_CONTROLLERS) removes it.
    '--disable-admission-plugins=ServiceAccount,TaintNodesByCondition',
    // A loopback advertise address is invalid in Endpoints; nothing in-cluster needs it.
    '--endpoint-reconciler-type=none',
    `--audit-policy-file=${policy}`,
    `--audit-log-path=${l.auditLogPath}`,
    '--audit-log-format=json',
    // Written in the request path, so events are on disk right after the response.
    '--audit-log-mode=blocking',
    ...extra(l, 'kube-apiserver'),
  ], logFile(l, 'kube-apiserver'));
}

// Every default controller except the node lifecycle one: it would taint
// (node.kubernetes.io/not-ready / unreachable) and evict pods from KWOK nodes whenever
// a heartbeat lags on a busy 2-core machine, making tests flaky.
export const DEFAULT_CONTROLLERS = '*,-node-lifecycle-controller';

function startControllerManager(running: Running, l: Layout): Proc {
  return launch(running, 'kube-controller-manager', bin(l, 'kube-controller-manager'), [
    `--kubeconfig=${l.kubeconfigPath}`,
    `--authentication-kubeconfig=${l.kubeconfigPath}`,
    `--authorization-kubeconfig=${l.kubeconfigPath}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${l.ports.kcm}`,
    '--leader-elect=false', // one instance; avoids lease waits on start
    `--controllers=${l.options.controllers ?? DEFAULT_CONTROLLERS}`,
    `--service-account-private-key-file=${l.pki.saKey}`,
    `--root-ca-file=${l.pki.caCert}`,
    `--cluster-signing-cert-file=${l.pki.caCert}`,
    `--cluster-signing-key-file=${l.pki.caKey}`,
    ...extra(l, 'kube-controller-manager'),
  ], logFile(l, 'kube-controller-manager'));
}

function schedulerConfigArgs(l: Layout): string[] {
  const config = l.options.schedulerConfig;
  if (config === undefined) return [`--kubeconfig=${l.kubeconfigPath}`, '--leader-elect=false'];
  const file = path.join(l.dir, 'kube-scheduler.yaml');
  fs.writeFileSync(file, toYaml({
    ...config,
    clientConnection: { ...(config.clientConnection as object | undefined), kubeconfig: l.kubeconfigPath },
    leaderElection: { leaderElect: false },
  }));
  return [`--config=${file}`];
}

function startScheduler(running: Running, l: Layout): Proc {
  return launch(running, 'kube-scheduler', bin(l, 'kube-scheduler'), [
    ...schedulerConfigArgs(l),
    `--authentication-kubeconfig=${l.kubeconfigPath}`,
    `--authorization-kubeconfig=${l.kubeconfigPath}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${l.ports.scheduler}`,
    ...extra(l, 'kube-scheduler'),
  ], logFile(l, 'kube-scheduler'));
}

function startKwok(running: Running, l: Layout): Proc {
  return launch(running, 'kwok', bin(l, 'kwok'), [
    `--kubeconfig=${l.kubeconfigPath}`,
    '--manage-all-nodes=false',
    `--manage-nodes-with-annotation-selector=${KWOK_ANNOTATION}=fake`,
    // Fake addresses only written into object status. The node IP is loopback so that
    // anything dialling a "kubelet" (kubectl logs/exec) stays on this machine.
    '--cidr=10.244.0.0/16',
    '--node-ip=127.0.0.1',
    `--server-address=127.0.0.1:${l.ports.kwok}`,
    ...extra(l, 'kwok'),
  ], logFile(l, 'kwok'), {
    // kwok also loads $KWOK_WORKDIR/kwok.yaml (default ~/.kwok); keep a user's file out.
    KWOK_WORKDIR: path.join(l.dir, 'kwok'),
  });
}

// ---------------------------------------------------------------------------------------
// Fake nodes

/** The Node object createFakeNodes creates; exported for callers creating thousands concurrently. */
export function fakeNode(spec: FakeNodeSpec): V1Node {
  const resources = spec.allocatable ?? { cpu: '32', memory: '128Gi', pods: '110', 'ephemeral-storage': '100Gi' };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: spec.name,
      labels: {
        'kubernetes.io/hostname': spec.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        type: 'kwok',
        ...spec.labels,
      },
      // The kwok annotation goes last: without it KWOK would not manage the node.
      annotations: { 'node.alpha.kubernetes.io/ttl': '0', ...spec.annotations, [KWOK_ANNOTATION]: 'fake' },
    },
    spec: spec.providerID ? { providerID: spec.providerID } : {},
    status: { allocatable: resources, capacity: resources },
  };
}

function isReady(node: V1Node): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

async function createFakeNodes(kc: KubeConfig, specs: FakeNodeSpec[], timeoutMs: number): Promise<V1Node[]> {
  const core = kc.makeApiClient(CoreV1Api);
  for (const spec of specs) await core.createNode({ body: fakeNode(spec) });
  return waitFor(`KWOK to report nodes ${specs.map((s) => s.name).join(', ')} Ready`, async () => {
    const nodes = await Promise.all(specs.map((s) => core.readNode({ name: s.name })));
    return nodes.every(isReady) ? nodes : undefined;
  }, { timeoutMs });
}

// ---------------------------------------------------------------------------------------
// Audit log

function readAuditEvents(file: string): AuditEvent[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const events: AuditEvent[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      events.push(JSON.parse(line) as AuditEvent);
    } catch {
      // the last line may be half-written
    }
  }
  return events;
}

// ---------------------------------------------------------------------------------------
// Start

/** Starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok. */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const binDir = options.binDir ?? (await ensureBinaries());
  assertBinaries(binDir);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binDir, options);
    } catch (err) {
      // A port found free can be taken (e.g. as a client's source port) before the
      // component binds it; a fresh set of ports fixes that. Anything else is real.
      if (attempt >= 3 || !/address already in use/.test((err as Error).message)) throw err;
    }
  }
}

async function startOnce(binDir: string, options: ControlPlaneOptions): Promise<ControlPlane> {
  const timeoutMs = options.startTimeoutMs ?? 60_000;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shc-controlplane-'));
  const running: Running = {
    dir,
    keepDir: options.keepDir ?? process.env.SHC_KEEP_CONTROLPLANE === '1',
    procs: [],
    stopped: false,
  };
  live.add(running);
  installHooks();
  launchWatchdog(running);
  try {
    const layout = await prepare(dir, binDir, options);
    await startComponents(running, layout, timeoutMs);
    return handle(running, layout);
  } catch (err) {
    await stopRunning(running);
    throw err;
  }
}

async function prepare(dir: string, binDir: string, options: ControlPlaneOptions): Promise<Layout> {
  const logDir = path.join(dir, 'logs');
  fs.mkdirSync(logDir);
  const [pki, ports] = await Promise.all([generatePki(path.join(dir, 'pki')), freePorts(6)]);
  const [etcdClient, etcdPeer, apiserver, kcm, scheduler, kwok] = ports as [number, number, number, number, number, number];
  const layout: Layout = {
    dir,
    binDir,
    logDir,
    pki,
    ports: { etcdClient, etcdPeer, apiserver, kcm, scheduler, kwok },
    kubeconfigPath: path.join(dir, 'admin.kubeconfig'),
    auditLogPath: path.join(dir, 'audit.log'),
    adminToken: randomBytes(24).toString('hex'),
    options,
  };
  fs.writeFileSync(layout.kubeconfigPath, kubeconfigYaml(serverUrl(layout), fs.readFileSync(pki.caCert, 'utf8'), {
    'client-certificate-data': b64(fs.readFileSync(pki.adminCert, 'utf8')),
    'client-key-data': b64(fs.readFileSync(pki.adminKey, 'utf8')),
  }), { mode: 0o600 });
  return layout;
}

function serverUrl(l: Layout): string {
  return `https://127.0.0.1:${l.ports.apiserver}`;
}

async function startComponents(running: Running, l: Layout, timeoutMs: number): Promise<void> {
  const etcd = startEtcd(running, l);
  await waitHealthy(etcd, `http://127.0.0.1:${l.ports.etcdClient}/health`, {}, timeoutMs);

  const apiserver = startApiserver(running, l);
  const admin: ProbeOptions = { ca: fs.readFileSync(l.pki.caCert), token: l.adminToken };
  await waitHealthy(apiserver, `${serverUrl(l)}/readyz`, admin, timeoutMs);
  // The default namespace appears shortly after readyz; tests create objects in it.
  await waitHealthy(apiserver, `${serverUrl(l)}/api/v1/namespaces/default`, admin, timeoutMs);

  const kcm = startControllerManager(running, l);
  const scheduler = startScheduler(running, l);
  const kwok = startKwok(running, l);
  await Promise.all([
    waitHealthy(kcm, `https://127.0.0.1:${l.ports.kcm}/healthz`, { insecure: true }, timeoutMs),
    waitHealthy(scheduler, `https://127.0.0.1:${l.ports.scheduler}/healthz`, { insecure: true }, timeoutMs),
    waitHealthy(kwok, `http://127.0.0.1:${l.ports.kwok}/healthz`, {}, timeoutMs),
  ]);
}

function handle(running: Running, l: Layout): ControlPlane {
  const server = serverUrl(l);
  const caPem = fs.readFileSync(l.pki.caCert, 'utf8');
  const procOf = (name: Component) => running.procs.find((p) => p.name === name);
  const kubeConfig = () => {
    const kc = new KubeConfig();
    kc.loadFromFile(l.kubeconfigPath);
    return kc;
  };
  return {
    dir: l.dir,
    binDir: l.binDir,
    server,
    kubeconfigPath: l.kubeconfigPath,
    caPath: l.pki.caCert,
    adminToken: l.adminToken,
    auditLogPath: l.auditLogPath,
    logDir: l.logDir,
    kubeConfig,
    kubectl: (args, opts = {}) =>
      run(bin(l, 'kubectl'), [`--kubeconfig=${opts.kubeconfig ?? l.kubeconfigPath}`, ...args], {
        input: opts.input,
        timeoutMs: opts.timeoutMs ?? 60_000,
      }),
    createFakeNodes: (specs, timeoutMs = 60_000) => createFakeNodes(kubeConfig(), specs, timeoutMs),
    kubeconfigForToken: (token, filePath) => {
      fs.writeFileSync(filePath, kubeconfigYaml(server, caPem, { token }), { mode: 0o600 });
      return filePath;
    },
    readAuditEvents: () => readAuditEvents(l.auditLogPath),
    logTail: (name, lines = 30) => {
      const p = procOf(name);
      return p ? tailOf(p, lines) : '(not started)';
    },
    stop: () => stopRunning(running),
  };
}
