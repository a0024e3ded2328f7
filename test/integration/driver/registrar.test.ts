import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { withoutTimestamps } from '../../../src/cli/registrar.js';
import { toGrpcHandlers } from '../../../src/csi/handlers.js';
import { loadCsi } from '../../../src/csi/proto.js';
import {
  loadRegistration,
  type PluginInfo,
  type RegistrationStatus,
} from '../../../src/csi/registration.js';
import { serveCsi, type CsiServer } from '../../../src/csi/server.js';
import type { IdentityHandlers } from '../../../src/gen/csi/csi/v1/Identity.js';
import { isAlive, startProcess, stopProcess, waitFor } from '../../support/processes.js';
import { repoRoot, tool } from '../../support/tools.js';

const execFileAsync = promisify(execFile);
const driverName = 'registrar-test.snapback.dev';
const kubeletPath = `/var/lib/kubelet/plugins/${driverName}/csi.sock`;
const main = path.join(repoRoot, 'src/cli/main.ts');

/** A CSI driver that serves only Identity, as the registrar needs. */
function serveIdentity(socket: string): Promise<CsiServer> {
  const protoPath = tool('CSI_PROTO');
  return serveCsi({
    endpoint: `unix://${socket}`,
    protoPath,
    handlers: {
      identity: toGrpcHandlers<IdentityHandlers>(
        'Identity',
        loadCsi(protoPath).csi.v1.Identity.service,
        {
          GetPluginInfo: async () => ({ name: driverName, vendor_version: 'test', manifest: {} }),
          GetPluginCapabilities: async () => ({ capabilities: [] }),
          Probe: async () => ({ ready: { value: true } }),
        },
        () => undefined,
      ),
    },
  });
}

interface LogLine {
  level: string;
  message: string;
  component?: string;
  [key: string]: unknown;
}

interface Registrar {
  child: ChildProcess;
  log: string;
  /** How the process ended, once it has, within `timeoutMs`. */
  exit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  text(): string;
  lines(): LogLine[];
  healthUrl(): Promise<string>;
}

/** node's arguments for `snapback registrar` against the driver socket in `dir`. */
function registrarCommand(dir: string): string[] {
  return [
    '--import',
    'tsx/esm',
    main,
    'registrar',
    `--csi-address=${path.join(dir, 'csi.sock')}`,
    `--kubelet-registration-path=${kubeletPath}`,
  ];
}

function startRegistrar(dir: string, registrationDir: string, wrapper: string[] = []): Registrar {
  const log = path.join(dir, 'registrar.log');
  const args = [
    ...registrarCommand(dir),
    `--plugin-registration-path=${registrationDir}`,
    '--http-endpoint=127.0.0.1:0',
    '--timeout=1s',
  ];
  const command = [...wrapper, process.execPath, ...args];
  const child = startProcess(command[0]!, command.slice(1), {
    logFile: log,
    owned: true,
    env: {
      ...process.env,
      SNAPBACK_CSI_PROTO: tool('CSI_PROTO'),
      SNAPBACK_REGISTRATION_PROTO: tool('PLUGIN_REGISTRATION_PROTO'),
    },
  });
  const text = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
  const lines = () =>
    text()
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as LogLine);
  return {
    child,
    log,
    exit: (timeoutMs) =>
      waitFor(
        () =>
          child.exitCode !== null || child.signalCode !== null
            ? { code: child.exitCode, signal: child.signalCode }
            : undefined,
        timeoutMs,
        `registrar ${child.pid} to exit`,
        text,
      ),
    text,
    lines,
    async healthUrl() {
      const serving = await waitFor(
        () => lines().find((l) => l.message.startsWith('serving /healthz')),
        30_000,
        'the registrar to serve /healthz',
        text,
      );
      return `http://127.0.0.1:${serving.port as number}/healthz`;
    },
  };
}

type UnaryMethod = (
  request: object,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response: unknown) => void,
) => void;

/** kubelet's side of the registration API: dial the socket, GetInfo, NotifyRegistrationStatus. */
function kubelet(socket: string) {
  const Registration = loadRegistration(tool('PLUGIN_REGISTRATION_PROTO'));
  const client = new Registration(`unix://${socket}`, grpc.credentials.createInsecure());
  const call = <Response>(method: string, request: object) =>
    new Promise<Response>((resolve, reject) => {
      const unary = (client as unknown as Record<string, UnaryMethod>)[method]!;
      unary.call(client, request, { deadline: Date.now() + 5_000 }, (error, response) =>
        error ? reject(error) : resolve(response as Response),
      );
    });
  return {
    getInfo: () => call<PluginInfo>('GetInfo', {}),
    notify: (status: RegistrationStatus) => call<object>('NotifyRegistrationStatus', status),
    close: () => client.close(),
  };
}

async function health(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}

describe('snapback registrar: kubelet plugin registration for the node plugin', function () {
  this.timeout(120_000);
  let dir: string;
  let registrationDir: string;
  let regSocket: string;
  let driver: CsiServer | undefined;
  let registrar: Registrar | undefined;

  beforeEach(function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-registrar-'));
    registrationDir = path.join(dir, 'registry');
    mkdirSync(registrationDir, { mode: 0o755 });
    regSocket = path.join(registrationDir, `${driverName}-reg.sock`);
  });

  afterEach(async function () {
    if (registrar?.child.pid !== undefined) await stopProcess(registrar.child.pid);
    if (this.currentTest?.state === 'failed' && registrar) {
      console.error(`registrar log:\n${registrar.text().slice(-4000)}`);
    }
    registrar = undefined;
    await driver?.stop();
    driver = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const socketServed = () =>
    waitFor(
      () => existsSync(regSocket) && statSync(regSocket).isSocket(),
      30_000,
      `the registration socket ${regSocket}`,
      () => registrar?.text() ?? '',
    );

  it("answers kubelet's GetInfo with the driver's name and node path, and accepts the registration", async function () {
    driver = await serveIdentity(path.join(dir, 'csi.sock'));
    registrar = startRegistrar(dir, registrationDir);
    await socketServed();
    const k = kubelet(regSocket);
    try {
      expect(await k.getInfo()).to.deep.equal({
        type: 'CSIPlugin',
        name: driverName,
        endpoint: kubeletPath,
        supported_versions: ['1.0.0'],
      });
      expect(await k.notify({ plugin_registered: true, error: '' })).to.deep.equal({});
    } finally {
      k.close();
    }
    await waitFor(
      () => registrar!.lines().some((l) => l.message === 'kubelet registered the plugin'),
      10_000,
      'the registration to be logged',
      registrar.text,
    );
    const url = await registrar.healthUrl();
    const ok = await health(url);
    expect(ok.status, ok.body).to.equal(200);
    expect(ok.body).to.contain(`[+]registration-socket ${regSocket}`);
    expect(ok.body).to.contain('[+]csi-driver');
    expect(isAlive(registrar.child.pid!)).to.equal(true);
    // one JSON object a line, every one the registrar's
    for (const line of registrar.lines())
      expect(line.component, line.message).to.equal('registrar');
    expect(statSync(regSocket).mode & 0o777).to.equal(0o600);
  });

  it('answers /healthz with 503 while the driver socket is gone, and 200 once it is back', async function () {
    const csiSocket = path.join(dir, 'csi.sock');
    driver = await serveIdentity(csiSocket);
    registrar = startRegistrar(dir, registrationDir);
    await socketServed();
    const url = await registrar.healthUrl();
    await waitFor(
      async () => (await health(url)).status === 200,
      10_000,
      '/healthz 200',
      async () => JSON.stringify(await health(url)),
    );

    await driver.stop();
    driver = undefined;
    const down = await waitFor(
      async () => {
        const h = await health(url);
        return h.status === 503 ? h : undefined;
      },
      10_000,
      '/healthz 503 without the driver',
    );
    expect(down.body).to.contain(`[-]csi-driver unix://${csiSocket} does not answer Probe`);
    expect(down.body).to.contain('[+]registration-socket');

    driver = await serveIdentity(csiSocket);
    await waitFor(
      async () => (await health(url)).status === 200,
      10_000,
      '/healthz 200 once the driver is back',
      async () => JSON.stringify(await health(url)),
    );
  });

  it('on SIGTERM stops serving, removes the registration socket and exits 0', async function () {
    driver = await serveIdentity(path.join(dir, 'csi.sock'));
    registrar = startRegistrar(dir, registrationDir);
    await socketServed();
    registrar.child.kill('SIGTERM');
    const exit = await registrar.exit(15_000);
    expect(exit, registrar.text()).to.deep.equal({ code: 0, signal: null });
    expect(existsSync(regSocket), 'registration socket left behind').to.equal(false);
    expect(registrar.lines().map((l) => l.message)).to.include('stopping on signal');
  });

  it('exits non-zero, logging the reason, when kubelet reports a failed registration', async function () {
    driver = await serveIdentity(path.join(dir, 'csi.sock'));
    registrar = startRegistrar(dir, registrationDir);
    await socketServed();
    const k = kubelet(regSocket);
    try {
      await k.notify({ plugin_registered: false, error: 'boom' });
    } finally {
      k.close();
    }
    const exit = await registrar.exit(15_000);
    expect(exit, registrar.text()).to.deep.equal({ code: 1, signal: null });
    expect(existsSync(regSocket), 'registration socket left behind').to.equal(false);
    const failure = registrar.lines().find((l) => l.level === 'error');
    expect(failure, registrar.text()).to.deep.include({ component: 'registrar', error: 'boom' });
  });

  it('waits for a driver that is not up yet, logging each distinct failure once', async function () {
    const csiSocket = path.join(dir, 'csi.sock');
    // something that accepts connections but does not speak gRPC, and counts the attempts
    let attempts = 0;
    const impostor = net.createServer((connection) => {
      attempts++;
      connection.destroy();
    });
    await new Promise<void>((resolve) => impostor.listen(csiSocket, resolve));
    try {
      registrar = startRegistrar(dir, registrationDir);
      const url = await registrar.healthUrl();
      await waitFor(
        () => attempts >= 4,
        30_000,
        'four GetPluginInfo attempts',
        () => `${attempts}`,
      );
      const waiting = await health(url);
      expect(waiting.status).to.equal(503);
      expect(waiting.body).to.contain(
        "[-]registration-socket not served yet: waiting for the CSI driver's name",
      );
    } finally {
      await new Promise<void>((resolve) => impostor.close(() => resolve()));
    }
    driver = await serveIdentity(csiSocket);
    await socketServed();
    const retries = registrar
      .lines()
      .filter((l) => l.message.includes('does not answer GetPluginInfo'));
    expect(retries.length, registrar.text()).to.be.within(1, attempts - 1);
    // grpc-js stamps each failure with the time of the attempt; the failure is the rest
    const errors = retries.map((l) => withoutTimestamps(String(l.error)));
    expect(errors.join('\n')).not.to.match(/\d{4}-\d\d-\d\dT/);
    expect(new Set(errors).size, `the same failure logged twice: ${errors.join('\n')}`).to.equal(
      errors.length,
    );
  });

  it('creates its socket in a root-owned 0755 directory as root with every capability dropped', async function () {
    if (process.getuid?.() !== 0 || !existsSync('/usr/bin/setpriv')) this.skip();
    driver = await serveIdentity(path.join(dir, 'csi.sock'));
    // as the chart runs it: root, no capabilities (so no DAC_OVERRIDE), no privilege escalation
    registrar = startRegistrar(dir, registrationDir, [
      '/usr/bin/setpriv',
      '--inh-caps=-all',
      '--ambient-caps=-all',
      '--bounding-set=-all',
      '--no-new-privs',
      '--',
    ]);
    await socketServed();
    const status = readFileSync(`/proc/${registrar.child.pid}/status`, 'utf8');
    expect(/^CapEff:\s*(\w+)$/m.exec(status)?.[1]).to.equal('0000000000000000');
    expect(statSync(registrationDir).mode & 0o777).to.equal(0o755);
    const k = kubelet(regSocket);
    try {
      expect((await k.getInfo()).name).to.equal(driverName);
    } finally {
      k.close();
    }
    const ok = await health(await registrar.healthUrl());
    expect(ok.status, ok.body).to.equal(200);
  });

  it('fails with one line naming the fix when pluginregistration.proto is missing', async function () {
    const missing = path.join(dir, 'missing.proto');
    const result = await execFileAsync(
      process.execPath,
      [...registrarCommand(dir), `--registration-proto=${missing}`],
      { env: { ...process.env, SNAPBACK_CSI_PROTO: tool('CSI_PROTO') } },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(result.code).to.equal(1);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines, result.stderr).to.have.length(1);
    expect(lines[0]).to.equal(
      `snapback registrar: pluginregistration.proto not found at ${missing} (from --registration-proto); ` +
        'pass --registration-proto=<path> or set SNAPBACK_REGISTRATION_PROTO. `make build` copies it ' +
        'into dist/ from the Go module k8s.io/kubelet (`bash tools/build.sh paths` prints ' +
        'PLUGIN_REGISTRATION_PROTO).',
    );
  });
});
