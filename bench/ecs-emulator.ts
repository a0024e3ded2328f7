/**
 * The ECS emulator as the benches use it: a fresh process per round, attached ESSD disks seeded
 * through its admin endpoint, its count of the ECS calls it answered, and the alicloud backend
 * as `snapback driver --backend=alicloud` builds it, pointed at the emulator.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createAlicloudBackend } from '../src/driver/backends/alicloud/index.js';
import type { AlicloudBackend } from '../src/driver/backends/alicloud/backend.js';
import { silentLogger } from '../src/observability/logger.js';
import { repoRoot } from '../test/support/tools.js';

export const ECS = {
  accessKeyId: 'BENCHKEY',
  accessKeySecret: 'bench-secret',
  region: 'cn-hangzhou',
  zone: 'cn-hangzhou-h',
} as const;

/** ECS calls by action: answered, and refused (throttled or failed). */
export type CallSummary = Record<string, { ok: number; failed: number }>;

export interface Emulator {
  endpoint: string;
  admin(method: string, route: string, body?: unknown): Promise<unknown>;
  calls(): Promise<CallSummary>;
  stop(): Promise<void>;
}

/** Starts an emulator with `--rate-limit=<Action>=<per second>` for each entry of `rateLimits`. */
export async function startEmulator(rateLimits: string[] = []): Promise<Emulator> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '--import',
      'tsx/esm',
      path.join(repoRoot, 'test/support/ecs-emulator/main.ts'),
      '--port=0',
      `--access-key-id=${ECS.accessKeyId}`,
      `--access-key-secret=${ECS.accessKeySecret}`,
      `--region=${ECS.region}`,
      `--zones=${ECS.zone}`,
      ...rateLimits.map((limit) => `--rate-limit=${limit}`),
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const endpoint = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /listening on (\S+)\n/.exec(out);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) =>
      reject(new Error(`the emulator exited (${code}) before listening: ${out}`)),
    );
  });
  const admin = async (method: string, route: string, body?: unknown): Promise<unknown> => {
    const response = await fetch(`http://${endpoint}/__emulator/${route}`, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`admin ${route}: ${await response.text()}`);
    return response.json();
  };
  return {
    endpoint,
    admin,
    calls: async () => (await admin('GET', 'calls')) as CallSummary,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** `count` ESSD disks in the one zone, attached to one instance, so ECS snapshots them. */
export async function seedDisks(emulator: Emulator, count: number): Promise<string[]> {
  const instance = (await emulator.admin('POST', 'instances', {
    regionId: ECS.region,
    zoneId: ECS.zone,
  })) as { id: string };
  const disks: string[] = [];
  for (let i = 0; i < count; i++) {
    const disk = (await emulator.admin('POST', 'disks', {
      regionId: ECS.region,
      zoneId: ECS.zone,
      sizeGiB: 40,
      category: 'cloud_essd',
      instanceId: instance.id,
    })) as { DiskId: string };
    disks.push(disk.DiskId);
  }
  return disks;
}

/** The alicloud backend with the driver's defaults, talking to `emulator`. */
export function emulatedBackend(
  emulator: Emulator,
  extraFlags: Record<string, string> = {},
): Promise<AlicloudBackend> {
  return createAlicloudBackend({
    nodeId: undefined,
    flags: {
      region: ECS.region,
      zone: ECS.zone,
      'ecs-endpoint': emulator.endpoint,
      'ecs-protocol': 'http',
      credentials: 'env',
      ...extraFlags,
    },
    env: {
      ALIBABA_CLOUD_ACCESS_KEY_ID: ECS.accessKeyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: ECS.accessKeySecret,
    },
    logger: silentLogger(),
  });
}

/** The calls made between two counts. */
export function callsBetween(before: CallSummary, after: CallSummary): CallSummary {
  const out: CallSummary = {};
  for (const [action, entry] of Object.entries(after)) {
    const prior = before[action] ?? { ok: 0, failed: 0 };
    const d = { ok: entry.ok - prior.ok, failed: entry.failed - prior.failed };
    if (d.ok || d.failed) out[action] = d;
  }
  return out;
}

/** All calls and the answered ones. */
export function callTotals(calls: CallSummary): { all: number; ok: number } {
  let all = 0;
  let ok = 0;
  for (const entry of Object.values(calls)) {
    all += entry.ok + entry.failed;
    ok += entry.ok;
  }
  return { all, ok };
}

/** "CreateSnapshot 10, DescribeSnapshots 3+1 refused". */
export function callBreakdown(calls: CallSummary): string {
  return Object.entries(calls)
    .map(([action, c]) => `${action} ${c.ok}${c.failed ? `+${c.failed} refused` : ''}`)
    .join(', ');
}
