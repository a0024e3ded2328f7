/**
 * Runs the ECS emulator by hand, for demos:
 *   npm run ecs-emulator -- --port=<p> --access-key-id=<id> --access-key-secret=<secret>
 * Optional: --region=<r> --zones=<z1,z2> --rate-limit=<Action>=<perSecond> (repeatable)
 * --snapshot-never-attached-disks --snapshot-cut-ms --instant-access-ms
 * --snapshot-accomplish-ms --disk-create-ms. Faults and seeding go through the admin
 * endpoint under /__emulator/ (see emulator.ts).
 */
import { parseArgs } from 'node:util';
import { EcsEmulator, defaultRegions } from './emulator.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'access-key-id': { type: 'string' },
    'access-key-secret': { type: 'string' },
    region: { type: 'string' },
    zones: { type: 'string' },
    'rate-limit': { type: 'string', multiple: true, default: [] },
    'snapshot-never-attached-disks': { type: 'boolean', default: false },
    'snapshot-cut-ms': { type: 'string' },
    'instant-access-ms': { type: 'string' },
    'snapshot-accomplish-ms': { type: 'string' },
    'disk-create-ms': { type: 'string' },
  },
  strict: true,
});

function fail(message: string): never {
  console.error(`ecs-emulator: ${message}`);
  process.exit(2);
}

function milliseconds(name: string): number | undefined {
  const raw = values[name as keyof typeof values] as string | undefined;
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) fail(`--${name} must be a number of milliseconds`);
  return value;
}

const accessKeyId = values['access-key-id'];
const accessKeySecret = values['access-key-secret'];
if (!accessKeyId || !accessKeySecret) fail('--access-key-id and --access-key-secret are required');
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535)
  fail(`--port must be a TCP port, got "${values.port}"`);

let regions = defaultRegions;
if (values.region) {
  const zones = values.zones
    ? values.zones.split(',')
    : ['a', 'b'].map((s) => `${values.region}-${s}`);
  regions = { [values.region]: zones };
} else if (values.zones) {
  fail('--zones needs --region');
}

const emulator = new EcsEmulator({
  credentials: { [accessKeyId]: { accessKeySecret } },
  port,
  regions,
  snapshotNeverAttachedDisks: values['snapshot-never-attached-disks'],
  timings: {
    snapshotCutMs: milliseconds('snapshot-cut-ms'),
    instantAccessMs: milliseconds('instant-access-ms'),
    snapshotAccomplishMs: milliseconds('snapshot-accomplish-ms'),
    diskCreateMs: milliseconds('disk-create-ms'),
  },
});
for (const limit of values['rate-limit']) {
  const [action, rate] = limit.split('=');
  const perSecond = Number(rate);
  if (!action || !Number.isFinite(perSecond) || perSecond <= 0) {
    fail(`--rate-limit takes <Action>=<requests per second>, got "${limit}"`);
  }
  emulator.faults.setRateLimit(action, { perSecond });
}

await emulator.start();
console.log(`listening on ${emulator.endpoint}`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void emulator.stop().then(() => process.exit(0));
  });
}
