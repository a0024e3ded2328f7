import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { readFinalStage } from '../../../tools/image/dockerfile.js';
import {
  imageLayoutDir,
  imageRefs,
  pauseVersion,
  repoRoot,
  snapbackVersion,
} from '../../../tools/image/layout.js';
import { REF_NAME, type Descriptor, type RuntimeConfig } from '../../../tools/image/oci.js';

/**
 * What `make image` built, unpacked as a runtime would and run with chroot. Skipped (with
 * the reason) where the images are not built or chroot is not allowed.
 */

interface Unpacked {
  root: string;
  config: RuntimeConfig;
}

function unpack(layoutDir: string, ref: string, into: string): Unpacked {
  const blob = (digest: string) =>
    path.join(layoutDir, 'blobs/sha256', digest.slice('sha256:'.length));
  const index = JSON.parse(readFileSync(path.join(layoutDir, 'index.json'), 'utf8')) as {
    manifests: Descriptor[];
  };
  const descriptor = index.manifests.find((manifest) => manifest.annotations?.[REF_NAME] === ref);
  if (!descriptor) throw new Error(`${ref} is not in ${layoutDir}/index.json`);
  const manifest = JSON.parse(readFileSync(blob(descriptor.digest), 'utf8')) as {
    config: Descriptor;
    layers: Descriptor[];
  };
  const root = path.join(into, ref.replace(/[/:]/g, '_'));
  mkdirSync(root);
  for (const layer of manifest.layers) {
    execFileSync('tar', ['-x', '--numeric-owner', '-p', '-f', blob(layer.digest), '-C', root]);
  }
  const config = JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8')) as {
    config: RuntimeConfig;
  };
  return { root, config: config.config };
}

function inChroot(root: string, args: string[], user?: string) {
  const result = spawnSync('chroot', [...(user ? [`--userspec=${user}`] : []), root, ...args], {
    encoding: 'utf8',
    // Node hands NODE_V8_COVERAGE to every child unless the child's env names it: under c8 the
    // image's node would then try to write coverage to a directory that is not in the image.
    env: {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      NODE_V8_COVERAGE: '',
    },
  });
  const output = `${result.stdout}${result.stderr}`;
  expect(result.status, `chroot ${args.join(' ')}: ${output}`).to.equal(0);
  return output;
}

describe('make image: the images run', function () {
  this.timeout(180_000);
  const refs = imageRefs();
  let dir: string;
  const images: Record<string, Unpacked> = {};

  before(function () {
    if (!existsSync(path.join(imageLayoutDir(), 'index.json'))) {
      this.skip(); // `make image` has not been run on this machine
    }
    if (process.getuid?.() !== 0) this.skip(); // chroot and owner-preserving unpacking need root
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-images-'));
    for (const ref of Object.values(refs)) images[ref] = unpack(imageLayoutDir(), ref, dir);
  });

  after(function () {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('snapback: the Dockerfile’s runtime config, and the CLI runs as uid 1000 with mkfs.ext4 beside it', function () {
    const { root, config } = images[refs.snapback]!;
    const stage = readFinalStage(path.join(repoRoot, 'Dockerfile'));
    expect(config).to.include({ User: stage.user, WorkingDir: stage.workdir });
    expect(config.Entrypoint).to.deep.equal(stage.entrypoint);
    expect(config.Cmd).to.deep.equal(stage.cmd);
    expect(config.Env).to.include('NODE_ENV=production');

    expect(
      inChroot(root, ['node', '/app/dist/src/cli/main.js', 'version'], '1000:1000').trim(),
    ).to.equal(snapbackVersion());
    expect(inChroot(root, ['mkfs.ext4', '-V'])).to.match(/^mke2fs \d/);
    inChroot(root, ['losetup', '--version']);
    inChroot(root, ['mount', '--version']);
    expect(readFileSync(path.join(root, 'etc/passwd'), 'utf8')).to.match(/^node:x:1000:1000:/m);
    expect(existsSync(path.join(root, 'app/dist/csi.proto'))).to.equal(true);
    expect(existsSync(path.join(root, 'app/node_modules/@grpc/grpc-js/package.json'))).to.equal(
      true,
    );
  });

  it('pause: /pause is the entrypoint and reports the version of tools/pause', function () {
    const { root, config } = images[refs.pause]!;
    expect(config.Entrypoint).to.deep.equal(['/pause']);
    expect(inChroot(root, ['/pause', '-v']).trim()).to.equal(`pause ${pauseVersion()}`);
  });

  it('nginx: a valid configuration that listens on IPv4 only, run like the official image', function () {
    const { root, config } = images[refs.nginx]!;
    expect(config.Cmd).to.deep.equal(['nginx', '-g', 'daemon off;']);
    expect(config).to.include({ StopSignal: 'SIGQUIT' });
    expect(config.ExposedPorts).to.deep.equal({ '80/tcp': {} });
    const site = readFileSync(path.join(root, 'etc/nginx/sites-available/default'), 'utf8');
    expect(site).to.match(/^\s*listen 80 default_server;/m);
    expect(site).to.not.match(/^\s*listen\s+\[::\]/m);
    inChroot(root, ['nginx', '-t']);
    inChroot(root, ['touch', '/data-probe']);
    inChroot(root, ['ls', '/']);
  });
});
