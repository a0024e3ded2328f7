import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { nodeVersionProblem } from '../../../src/util/package.js';
import { repoRoot } from '../../support/tools.js';

describe('the Node version snapback needs', function () {
  for (const [version, ok] of [
    ['22.19.0', true],
    ['v22.23.3', true],
    ['24.21.0', true],
    ['30.0.0', true],
    ['22.18.9', false],
    ['20.20.2', false],
    ['v18.0.0', false],
  ] as const) {
    it(`${version}: ${ok ? 'runs' : 'is refused in one line'}`, function () {
      const problem = nodeVersionProblem(version);
      if (ok) expect(problem).to.equal(undefined);
      else
        expect(problem).to.equal(
          `Node ${version} is too old: snapback needs Node 22.19.0 or newer (Node 24 LTS recommended)`,
        );
    });
  }

  it('the CLI on an older Node says so in one line and exits 1, instead of crashing in undici', function () {
    // the machine's own Node, when it is older than 22.19 (as on this project's CI machines)
    const system = spawnSync('/usr/bin/node', ['--version'], { encoding: 'utf8' });
    if (system.status !== 0 || !nodeVersionProblem(system.stdout.trim())) this.skip();
    const result = spawnSync(
      '/usr/bin/node',
      ['--import', 'tsx/esm', path.join(repoRoot, 'src/cli/main.ts'), 'controller', '--help'],
      { cwd: repoRoot, encoding: 'utf8' },
    );
    expect(result.status).to.equal(1);
    expect(result.stderr.trim().split('\n')).to.deep.equal([
      `snapback: Node ${system.stdout.trim().replace(/^v/, '')} is too old: snapback needs Node 22.19.0 or newer (Node 24 LTS recommended)`,
    ]);
  });
});
