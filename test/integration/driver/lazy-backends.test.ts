import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { repoRoot } from '../../support/tools.js';

/**
 * The backend registry and the CLI modules that list the backends load no backend until one
 * is chosen: the alicloud one (its ECS SDK is ~70 MiB resident) only for --backend=alicloud.
 * A fresh Node.js process records every module it loads (module.registerHooks).
 */
describe('backend registry: lazy backends', function () {
  this.timeout(60_000);

  const script = `
import { registerHooks } from 'node:module';
const loaded = [];
registerHooks({
  load(url, context, nextLoad) {
    loaded.push(url);
    return nextLoad(url, context);
  },
});
const seen = () => ({
  sdk: loaded.filter((u) => u.includes('/node_modules/@alicloud/')).length,
  alicloud: loaded
    .filter((u) => u.includes('/backends/alicloud/'))
    .map((u) => u.slice(u.lastIndexOf('/') + 1)),
});
const { backendFactories } = await import('./src/driver/backends/registry.ts');
await import('./src/cli/driver.ts');
await import('./src/cli/all-in-one.ts');
const listed = seen();
const failure = await backendFactories.alicloud.create({ nodeId: undefined, flags: {}, env: {},
  logger: { child() { return this; }, info() {}, warn() {}, error() {}, debug() {} } })
  .then(() => 'created', (error) => error.message);
process.stdout.write(JSON.stringify({ listed, chosen: seen(), failure }));
`;

  it('loads only the alicloud flag table until --backend=alicloud is chosen, then its SDK', function () {
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx/esm', '--input-type=module', '-e', script],
      { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, SNAPBACK_LOG_LEVEL: 'error' } },
    );
    const result = JSON.parse(out) as {
      listed: { sdk: number; alicloud: string[] };
      chosen: { sdk: number; alicloud: string[] };
      failure: string;
    };
    expect(result.listed, 'modules loaded by listing the backends').to.deep.equal({
      sdk: 0,
      alicloud: ['flags.ts'],
    });
    expect(result.chosen.sdk, '@alicloud modules once the backend is chosen').to.be.greaterThan(0);
    expect(result.chosen.alicloud).to.include.members(['index.ts', 'sdk-client.ts']);
    expect(result.failure).to.match(/region/);
  });
});
