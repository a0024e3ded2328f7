import { expect } from 'chai';
import { linkSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { prepareSocket, socketPath } from '../../../src/csi/endpoint.js';

describe('csi: endpoints', function () {
  it('accepts unix:///path, unix:/path and a bare absolute path', function () {
    expect(socketPath('unix:///run/csi/csi.sock')).to.equal('/run/csi/csi.sock');
    expect(socketPath('unix:/run/csi/csi.sock')).to.equal('/run/csi/csi.sock');
    expect(socketPath('/run/csi/csi.sock')).to.equal('/run/csi/csi.sock');
  });

  it('rejects TCP and relative endpoints with the expected form', function () {
    expect(() => socketPath('tcp://127.0.0.1:10000')).to.throw(/unix:\/\/\/absolute/);
    expect(() => socketPath('unix://csi.sock')).to.throw(/not a unix socket/);
    expect(() => socketPath('csi.sock')).to.throw(/not a unix socket/);
  });

  describe('prepareSocket', function () {
    let dir: string;
    beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-endpoint-'))));
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    const listen = (socket: string) =>
      new Promise<net.Server>((resolve) => {
        const server = net.createServer();
        server.listen(socket, () => resolve(server));
      });

    it('removes a socket file nobody serves any more', async function () {
      // A socket file whose server is gone, as a crashed driver leaves it: a hard link keeps
      // the socket inode after the server closes (and unlinks its own name).
      const live = path.join(dir, 'live.sock');
      const socket = path.join(dir, 'csi.sock');
      const server = await listen(live);
      linkSync(live, socket);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      expect(statSync(socket).isSocket()).to.equal(true);
      await prepareSocket(socket);
      expect(() => statSync(socket)).to.throw(/ENOENT/);
    });

    it('refuses a socket that a live process serves', async function () {
      const socket = path.join(dir, 'live.sock');
      const server = await listen(socket);
      try {
        let error: Error | undefined;
        await prepareSocket(socket).catch((e: Error) => (error = e));
        expect(error?.message).to.match(/served by another running process/);
        expect(statSync(socket).isSocket()).to.equal(true);
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });

    it('refuses to replace a file that is not a socket', async function () {
      const file = path.join(dir, 'not-a-socket');
      writeFileSync(file, 'data');
      let error: Error | undefined;
      await prepareSocket(file).catch((e: Error) => (error = e));
      expect(error?.message).to.match(/is not a socket/);
      expect(statSync(file).isFile()).to.equal(true);
    });

    it('creates the socket directory', async function () {
      const socket = path.join(dir, 'a', 'b', 'csi.sock');
      await prepareSocket(socket);
      expect(statSync(path.dirname(socket)).isDirectory()).to.equal(true);
    });
  });
});
