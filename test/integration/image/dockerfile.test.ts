import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { parseFinalStage, readFinalStage } from '../../../tools/image/dockerfile.js';
import { repoRoot } from '../../../tools/image/layout.js';
import { debianMirror, rootfsKey, type RootfsSpec } from '../../../tools/image/rootfs.js';
import { StepError } from '../../../tools/image/steps.js';

describe('image build: what the Dockerfile and apt describe', function () {
  describe('the Dockerfile’s final stage', function () {
    it('reads USER, ENV, WORKDIR, ENTRYPOINT, CMD and apt packages of the last FROM only', function () {
      const stage = parseFinalStage(
        [
          '# syntax=docker/dockerfile:1',
          'FROM golang:1 AS build',
          'USER 0',
          'ENV GOFLAGS=-mod=mod',
          'RUN apt-get install -y gcc',
          '',
          'FROM --platform=linux/amd64 node:24-bookworm-slim',
          '# comment',
          'RUN apt-get update \\',
          '  && apt-get install -y --no-install-recommends e2fsprogs \\',
          '     mount util-linux \\',
          '  && rm -rf /var/lib/apt/lists/*',
          'ENV NODE_ENV=production A="two words"',
          'ENV LEGACY some value',
          'ENV NODE_ENV=staging',
          'WORKDIR /app',
          'WORKDIR sub',
          'USER 1000:1000',
          'ENTRYPOINT ["node", "/app/main.js"]',
          'CMD echo hello',
        ].join('\n'),
      );
      expect(stage).to.deep.equal({
        from: 'node:24-bookworm-slim',
        user: '1000:1000',
        env: [
          ['NODE_ENV', 'staging'],
          ['A', 'two words'],
          ['LEGACY', 'some value'],
        ],
        workdir: '/app/sub',
        entrypoint: ['node', '/app/main.js'],
        cmd: ['/bin/sh', '-c', 'echo hello'],
        aptPackages: ['e2fsprogs', 'mount', 'util-linux'],
      });
    });

    it('rejects an exec form that is not an array of strings', function () {
      expect(() => parseFinalStage('FROM x\nCMD ["a", 1]')).to.throw(
        /line 2: CMD is not a JSON array of strings/,
      );
      expect(() => parseFinalStage('RUN true')).to.throw(/no FROM/);
    });

    it('finds in the repository’s Dockerfile the runtime config the image gets', function () {
      const stage = readFinalStage(path.join(repoRoot, 'Dockerfile'));
      expect(stage.from).to.match(/^node:\d+-[a-z]+-slim$/);
      expect(stage.user).to.equal('1000:1000');
      expect(stage.workdir).to.equal('/app');
      expect(stage.entrypoint).to.deep.equal(['node', '/app/dist/src/cli/main.js']);
      // the young generation capped at 2 MiB: the embedded stack's peak memory (bench/snapshot-stack)
      expect(stage.env).to.deep.include(['NODE_OPTIONS', '--max-semi-space-size=2']);
      expect(stage.aptPackages).to.include.members(['e2fsprogs', 'mount', 'util-linux']);
    });
  });

  describe('the Debian mirror, read from apt’s configuration', function () {
    let apt: string;
    beforeEach(function () {
      apt = mkdtempSync(path.join(os.tmpdir(), 'snapback-apt-'));
      mkdirSync(path.join(apt, 'sources.list.d'));
    });
    afterEach(function () {
      rmSync(apt, { recursive: true, force: true });
    });

    it('takes the deb822 source of the suite itself, not its security or updates suites', function () {
      writeFileSync(
        path.join(apt, 'sources.list.d/debian.sources'),
        [
          'Types: deb',
          'URIs: http://security.mirror.invalid/debian-security',
          'Suites: bookworm-security',
          'Components: main',
          '',
          'Types: deb-src deb',
          '# a comment',
          'URIs: http://mirror.invalid/debian',
          'Suites: bookworm bookworm-updates',
          'Components: main contrib',
          'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
        ].join('\n'),
      );
      expect(debianMirror('bookworm', apt)).to.deep.equal({
        uri: 'http://mirror.invalid/debian',
        keyring: '/usr/share/keyrings/debian-archive-keyring.gpg',
      });
    });

    it('falls back to a one-line sources.list, and says so when there is no source', function () {
      writeFileSync(
        path.join(apt, 'sources.list'),
        '# deb http://old.invalid/debian bookworm main\ndeb [arch=amd64] http://mirror.invalid/debian bookworm main\n',
      );
      expect(debianMirror('bookworm', apt)).to.deep.equal({
        uri: 'http://mirror.invalid/debian',
        keyring: undefined,
      });
      expect(() => debianMirror('trixie', apt))
        .to.throw(StepError)
        .with.property('message')
        .that.matches(/no "deb \.\.\. trixie main" source/);
    });
  });

  it('keys a rootfs by suite, variant and the set of packages', function () {
    const spec: RootfsSpec = {
      suite: 'bookworm',
      variant: 'minbase',
      arch: 'amd64',
      packages: ['mount', 'e2fsprogs'],
    };
    expect(rootfsKey({ ...spec, packages: ['e2fsprogs', 'mount', 'mount'] })).to.equal(
      rootfsKey(spec),
    );
    expect(rootfsKey({ ...spec, packages: ['e2fsprogs'] })).to.not.equal(rootfsKey(spec));
    expect(rootfsKey({ ...spec, suite: 'trixie' })).to.not.equal(rootfsKey(spec));
  });
});
