import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { controllerFlags, stackOptions, type StackOptions } from '../../../src/cli/controller.js';
import { allInOneFlags, allInOneOptions } from '../../../src/cli/all-in-one.js';
import { parseCommandFlags } from '../../../src/cli/flags.js';
import { silentLogger } from '../../../src/observability/logger.js';

type Picked = Pick<
  StackOptions,
  | 'timeoutMs'
  | 'snapshotterTimeoutMs'
  | 'provisionerTimeoutMs'
  | 'snapshotNamePrefix'
  | 'snapshotNameUuidLength'
  | 'volumeNamePrefix'
  | 'volumeNameUuidLength'
  | 'preventVolumeModeConversion'
>;

const upstreamDefaults: Picked = {
  timeoutMs: 60_000,
  snapshotterTimeoutMs: 60_000,
  provisionerTimeoutMs: 10_000,
  snapshotNamePrefix: 'snapshot',
  snapshotNameUuidLength: -1,
  volumeNamePrefix: 'pvc',
  volumeNameUuidLength: -1,
  preventVolumeModeConversion: true,
};

describe('snapback controller flags: the embedded parts configured as upstream', function () {
  let dir: string;
  let kubeconfig: string;

  before(function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-flags-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]',
        'users: [{name: u, user: {token: t}}]',
        'contexts: [{name: c, context: {cluster: c, user: u}}]',
        'current-context: c',
      ].join('\n'),
    );
  });

  after(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  const parse = (args: string[]) =>
    stackOptions(
      { ...parseCommandFlags(controllerFlags, args).values, kubeconfig },
      {},
      silentLogger(),
    );

  const accepted: Array<[string, string[], Partial<Picked>]> = [
    ['no flags: upstream defaults', [], {}],
    [
      'snapshot names',
      ['--snapshot-name-prefix=snap', '--snapshot-name-uuid-length=8'],
      { snapshotNamePrefix: 'snap', snapshotNameUuidLength: 8 },
    ],
    [
      'volume names',
      ['--volume-name-prefix', 'vol', '--volume-name-uuid-length', '32'],
      { volumeNamePrefix: 'vol', volumeNameUuidLength: 32 },
    ],
    ['the whole UID', ['--volume-name-uuid-length=-1'], { volumeNameUuidLength: -1 }],
    [
      'separate timeouts',
      ['--csi-snapshotter-timeout=2m', '--csi-provisioner-timeout=30s'],
      { snapshotterTimeoutMs: 120_000, provisionerTimeoutMs: 30_000 },
    ],
    [
      '--timeout sets both unless one is given',
      ['--timeout=20s', '--csi-provisioner-timeout=5s'],
      { timeoutMs: 20_000, snapshotterTimeoutMs: 20_000, provisionerTimeoutMs: 5_000 },
    ],
    [
      'volume mode conversion allowed',
      ['--prevent-volume-mode-conversion=false'],
      { preventVolumeModeConversion: false },
    ],
    [
      'a bare boolean as true',
      ['--prevent-volume-mode-conversion', '--volume-name-prefix=vol'],
      { preventVolumeModeConversion: true, volumeNamePrefix: 'vol' },
    ],
    [
      'a boolean as Go reads one',
      ['--prevent-volume-mode-conversion=0'],
      { preventVolumeModeConversion: false },
    ],
  ];
  for (const [title, args, expected] of accepted) {
    it(`accepts ${title}`, function () {
      const options = parse(args);
      const picked = Object.fromEntries(
        Object.keys(upstreamDefaults).map((key) => [key, options[key as keyof Picked]]),
      );
      expect(picked).to.deep.equal({ ...upstreamDefaults, ...expected });
    });
  }

  const refused: Array<[string[], RegExp]> = [
    [
      ['--snapshot-prefix=snap'],
      /unknown flag --snapshot-prefix \(known: --kubeconfig, --csi-address/,
    ],
    [['--timeout'], /--timeout needs a value/],
    [['--snapshot-name-prefix='], /--snapshot-name-prefix cannot be empty/],
    [['--volume-name-prefix='], /--volume-name-prefix cannot be empty/],
    [
      ['--volume-name-prefix=PVC_'],
      /--volume-name-prefix "PVC_" would make invalid PersistentVolume names/,
    ],
    [
      ['--snapshot-name-uuid-length=0'],
      /--snapshot-name-uuid-length takes -1 .* or a length from 1 to 32 \(got "0"\)/,
    ],
    [['--snapshot-name-uuid-length=33'], /from 1 to 32 \(got "33"\)/],
    [['--volume-name-uuid-length=8.5'], /--volume-name-uuid-length takes -1/],
    [['--volume-name-uuid-length=ten'], /--volume-name-uuid-length takes -1/],
    [['--csi-provisioner-timeout=0s'], /--csi-provisioner-timeout must be longer than 0/],
    [['--csi-snapshotter-timeout=soon'], /--csi-snapshotter-timeout: "soon" is not a duration/],
    [
      ['--prevent-volume-mode-conversion=yes'],
      /--prevent-volume-mode-conversion takes true or false \(got "yes"\)/,
    ],
  ];
  for (const [args, message] of refused) {
    it(`refuses ${args.join(' ')} naming what to fix`, function () {
      expect(() => parse(args)).to.throw(message);
    });
  }

  it('all-in-one hands the same flags to the controllers', function () {
    const split = allInOneOptions(
      parseCommandFlags(allInOneFlags, [
        '--backend=local',
        '--node-id=n1',
        `--root=${dir}`,
        '--snapshot-name-prefix=snap',
        '--volume-name-uuid-length=12',
        '--csi-provisioner-timeout=3s',
        '--prevent-volume-mode-conversion=false',
      ]).values,
    );
    const options = stackOptions(
      { ...split.stackFlags, kubeconfig },
      { csiEndpoint: split.endpoint },
      silentLogger(),
    );
    expect(options.snapshotNamePrefix).to.equal('snap');
    expect(options.volumeNameUuidLength).to.equal(12);
    expect(options.provisionerTimeoutMs).to.equal(3_000);
    expect(options.preventVolumeModeConversion).to.equal(false);
  });
});
