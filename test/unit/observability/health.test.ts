import { expect } from 'chai';
import {
  ReadinessGate,
  parseListenAddress,
  startHealthServer,
  type HealthServer,
  type ReadinessCheck,
} from '../../../src/observability/health.js';
import { createMetrics } from '../../../src/observability/metrics.js';

describe('observability/health', function () {
  describe('parseListenAddress', function () {
    it('reads host:port, :port and [ipv6]:port', function () {
      expect(parseListenAddress('127.0.0.1:8080')).to.deep.equal({ host: '127.0.0.1', port: 8080 });
      expect(parseListenAddress(':9090')).to.deep.equal({ host: undefined, port: 9090 });
      expect(parseListenAddress('[::1]:0')).to.deep.equal({ host: '::1', port: 0 });
      expect(parseListenAddress('localhost:8081')).to.deep.equal({ host: 'localhost', port: 8081 });
    });

    it('rejects an address without a usable port, saying what it expects', function () {
      for (const bad of ['8080', '127.0.0.1', ':70000', 'host:port', '::1:80', '']) {
        expect(() => parseListenAddress(bad), bad).to.throw(/expected host:port, :port/);
      }
    });
  });

  describe('HTTP endpoints', function () {
    let server: HealthServer | undefined;

    afterEach(async function () {
      await server?.close();
      server = undefined;
    });

    it('answers /healthz with 200 while the process runs, whatever readiness says', async function () {
      const gate = new ReadinessGate('informers', 'waiting for caches to sync');
      server = await startHealthServer({ address: '127.0.0.1:0', readiness: [gate] });
      expect(server.port).to.be.greaterThan(0);
      const res = await fetch(`${server.url}/healthz`);
      expect(res.status).to.equal(200);
      expect(await res.text()).to.equal('ok\n');
    });

    it('answers /healthz and /livez from the liveness checks when there are some', async function () {
      const socket = new ReadinessGate('registration-socket', 'socket missing');
      server = await startHealthServer({ address: '127.0.0.1:0', liveness: [socket] });
      for (const path of ['/healthz', '/livez']) {
        const res = await fetch(`${server.url}${path}`);
        expect(res.status, path).to.equal(503);
        expect(await res.text(), path).to.equal(
          `[-]registration-socket socket missing\n${path.slice(1)} check failed\n`,
        );
      }
      // liveness is not readiness: /readyz has no checks of its own here
      expect((await fetch(`${server.url}/readyz`)).status).to.equal(200);
      socket.markReady('/registration/x-reg.sock');
      const res = await fetch(`${server.url}/healthz`);
      expect(res.status).to.equal(200);
      expect(await res.text()).to.contain('[+]registration-socket /registration/x-reg.sock');
    });

    it('turns /readyz from 503 to 200 when every check passes, naming the failing one', async function () {
      const caches = new ReadinessGate('informers', 'waiting for caches to sync');
      const leader = new ReadinessGate('leader-election', 'not started');
      server = await startHealthServer({ address: '127.0.0.1:0', readiness: [caches, leader] });

      let res = await fetch(`${server.url}/readyz`);
      expect(res.status).to.equal(503);
      let body = await res.text();
      expect(body).to.contain('[-]informers waiting for caches to sync');
      expect(body).to.contain('[-]leader-election not started');

      leader.markReady('standing by (holder: other-pod)');
      res = await fetch(`${server.url}/readyz`);
      expect(res.status).to.equal(503);
      body = await res.text();
      expect(body).to.contain('[+]leader-election standing by (holder: other-pod)');
      expect(body).to.contain('[-]informers waiting for caches to sync');

      caches.markReady();
      res = await fetch(`${server.url}/readyz`);
      expect(res.status).to.equal(200);
      expect(await res.text()).to.contain('readyz check passed');

      caches.markNotReady('watch on volumesnapshots lost');
      res = await fetch(`${server.url}/readyz`);
      expect(res.status).to.equal(503);
      expect(await res.text()).to.contain('[-]informers watch on volumesnapshots lost');
    });

    it('reports a check that throws or hangs as not ready instead of hanging the probe', async function () {
      const throwing: ReadinessCheck = {
        name: 'socket',
        check: () => {
          throw new Error('connect ENOENT /csi/csi.sock');
        },
      };
      const hanging: ReadinessCheck = { name: 'slow', check: () => new Promise(() => undefined) };
      server = await startHealthServer({
        address: '127.0.0.1:0',
        readiness: [throwing, hanging],
        checkTimeoutMs: 50,
      });
      const res = await fetch(`${server.url}/readyz`);
      expect(res.status).to.equal(503);
      const body = await res.text();
      expect(body).to.contain('[-]socket connect ENOENT /csi/csi.sock');
      expect(body).to.contain('[-]slow no answer within 50 ms');
    });

    it('is ready with no checks at all', async function () {
      server = await startHealthServer({ address: '127.0.0.1:0' });
      expect((await fetch(`${server.url}/readyz`)).status).to.equal(200);
    });

    it('serves the registry on /metrics in the Prometheus text format', async function () {
      const metrics = createMetrics({ processMetrics: false });
      metrics.snapshotsCreated.inc({ namespace: 'shop', policy: 'nightly' });
      server = await startHealthServer({ address: '127.0.0.1:0', registry: metrics.registry });
      const res = await fetch(`${server.url}/metrics`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.contain('text/plain; version=0.0.4');
      expect(await res.text()).to.contain(
        'snapback_snapshots_created_total{namespace="shop",policy="nightly"} 1',
      );
    });

    it('answers 404 for /metrics without a registry and for unknown paths, 405 for writes', async function () {
      server = await startHealthServer({ address: '127.0.0.1:0' });
      expect((await fetch(`${server.url}/metrics`)).status).to.equal(404);
      const unknown = await fetch(`${server.url}/nope`);
      expect(unknown.status).to.equal(404);
      expect(await unknown.text()).to.contain('try /healthz, /readyz or /metrics');
      const post = await fetch(`${server.url}/healthz`, { method: 'POST' });
      expect(post.status).to.equal(405);
      expect(post.headers.get('allow')).to.equal('GET, HEAD');
    });

    it('fails to start with the address in the message when the port is taken', async function () {
      server = await startHealthServer({ address: '127.0.0.1:0' });
      let failure: unknown;
      try {
        const second = await startHealthServer({ address: `127.0.0.1:${server.port}` });
        await second.close();
      } catch (error) {
        failure = error;
      }
      expect((failure as Error | undefined)?.message).to.match(
        new RegExp(`cannot listen on 127\\.0\\.0\\.1:${server.port} .*EADDRINUSE`),
      );
    });

    it('closes even while a client holds a keep-alive connection', async function () {
      server = await startHealthServer({ address: '127.0.0.1:0' });
      const url = server.url;
      await fetch(`${url}/healthz`, { keepalive: true });
      await server.close();
      server = undefined;
      let refused: unknown;
      try {
        await fetch(`${url}/healthz`);
      } catch (error) {
        refused = error;
      }
      expect(refused, 'the port still answered after close()').to.be.instanceOf(Error);
    });
  });
});
