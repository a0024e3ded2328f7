import { expect } from 'chai';

import { driverFlags, driverOptions } from '../../../src/cli/driver.js';
import { parseCommandFlags } from '../../../src/cli/flags.js';
import { createLocalBackend } from '../../../src/driver/backends/local/index.js';
import { silentLogger } from '../../../src/observability/logger.js';

describe('cli: snapback driver flags', function () {
  it('reads --name=value and --name value against its table', function () {
    const parse = (args: string[]) => parseCommandFlags(driverFlags, args);
    expect(parse(['--backend=local', '--root', '/r', '--endpoint=unix:///x'])).to.deep.equal({
      help: false,
      values: { backend: 'local', root: '/r', endpoint: 'unix:///x' },
    });
    expect(parse(['-h']).help).to.equal(true);
    expect(() => parse(['local'])).to.throw(/unexpected argument "local"/);
    expect(() => parse(['--verbose'])).to.throw(/unknown flag --verbose \(known: --backend/);
    expect(() => parse(['--root'])).to.throw(/--root needs a value \(--root=<value>\)/);
  });

  it("splits driver flags from the backend's own", function () {
    const options = driverOptions({
      backend: 'local',
      endpoint: 'unix:///tmp/csi.sock',
      'node-id': 'n1',
      root: '/var/lib/snapback',
      'kubelet-dir': '/var/lib/k0s/kubelet',
    });
    expect(options).to.deep.include({
      backendName: 'local',
      endpoint: 'unix:///tmp/csi.sock',
      nodeId: 'n1',
      backendFlags: { root: '/var/lib/snapback', 'kubelet-dir': '/var/lib/k0s/kubelet' },
    });
    expect(options.services).to.deep.equal({ controller: true, node: undefined });
  });

  it('says what is missing or unknown', function () {
    expect(() => driverOptions({ endpoint: 'unix:///x' })).to.throw(/--backend is required/);
    expect(() => driverOptions({ backend: 'nfs', endpoint: 'unix:///x' })).to.throw(
      /unknown backend "nfs" \(known: local/,
    );
    expect(() => driverOptions({ backend: 'local' })).to.throw(/--endpoint is required/);
    expect(() => driverOptions({ backend: 'local', endpoint: 'unix:///x', rooot: '/r' })).to.throw(
      /unknown flag --rooot/,
    );
    expect(() =>
      driverOptions({ backend: 'local', endpoint: 'unix:///x', services: 'identity' }),
    ).to.throw(/--services takes controller, node or both/);
  });

  it('serves only the services asked for', function () {
    const options = driverOptions({ backend: 'local', endpoint: 'unix:///x', services: 'node' });
    expect(options.services).to.deep.equal({ controller: false, node: true });
  });

  it('refuses a relative --kubelet-dir for the local backend, before touching --root', async function () {
    let error: unknown;
    try {
      await createLocalBackend({
        nodeId: 'n1',
        flags: { root: '/nonexistent/snapback-root', 'kubelet-dir': 'var/lib/kubelet' },
        env: {},
        logger: silentLogger(),
      });
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).to.equal(
      '--kubelet-dir must be an absolute path (got "var/lib/kubelet")',
    );
  });
});
