import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { expect } from 'chai';
import ecs from '@alicloud/ecs20140526';
import openapi from '@alicloud/openapi-client';
import { waitFor } from '../../support/processes.js';
import { repoRoot } from '../../support/tools.js';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The emulator as people start it by hand for demos: `npm run ecs-emulator -- ...`. */
describe('npm run ecs-emulator', function () {
  this.timeout(60_000);
  let child: ChildProcess | undefined;

  afterEach(async function () {
    const pgid = child?.pid;
    if (pgid === undefined) return;
    // npm does not pass SIGTERM on to the emulator, so the whole group this test made goes.
    if (groupAlive(pgid)) process.kill(-pgid, 'SIGTERM');
    await waitFor(() => !groupAlive(pgid), 10_000, `process group ${pgid} to exit`);
  });

  it('prints "listening on 127.0.0.1:<port>" and serves signed ECS calls and the admin endpoint', async function () {
    const port = await freePort();
    let output = '';
    child = spawn(
      'npm',
      [
        'run',
        '--silent',
        'ecs-emulator',
        '--',
        `--port=${port}`,
        '--access-key-id=DEMOKEY',
        '--access-key-secret=demo-secret',
        '--rate-limit=CreateSnapshot=10',
      ],
      {
        cwd: repoRoot,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitFor(
      () => output.includes(`listening on 127.0.0.1:${port}\n`),
      30_000,
      'the emulator to listen',
      () => output,
    );
    const client = new ecs.default(
      new openapi.Config({
        accessKeyId: 'DEMOKEY',
        accessKeySecret: 'demo-secret',
        endpoint: `127.0.0.1:${port}`,
        protocol: 'http',
      }),
    );
    const disks = await client.describeDisks(
      new ecs.DescribeDisksRequest({ regionId: 'cn-hangzhou' }),
    );
    expect(disks.body?.totalCount).to.equal(0);
    const response = await fetch(`http://127.0.0.1:${port}/__emulator/calls`);
    expect(await response.json()).to.deep.equal({ DescribeDisks: { ok: 1, failed: 0 } });
  });

  it('refuses to start without credentials, saying which flags are missing', async function () {
    let output = '';
    child = spawn('npm', ['run', '--silent', 'ecs-emulator', '--', '--port=0'], {
      cwd: repoRoot,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child!.once('exit', resolve));
    expect(code).to.not.equal(0);
    expect(output).to.include('--access-key-id and --access-key-secret are required');
  });
});
