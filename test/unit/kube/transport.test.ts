import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { RequestTimeoutError, Transport } from '../../../src/kube/transport.js';

describe('kube: HTTP transport', function () {
  let server: http.Server;
  let base: string;
  const seen: {
    method?: string;
    url?: string;
    headers: http.IncomingHttpHeaders;
    body: string;
    port: number;
  }[] = [];

  before(async function () {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        seen.push({
          method: req.method,
          url: req.url,
          headers: req.headers,
          body,
          port: req.socket.remotePort!,
        });
        if (req.url?.includes('watch=true')) {
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.write('{"type":"ADDED"}\n');
          return; // keeps the stream open until the client aborts
        }
        res.writeHead(req.url?.endsWith('/missing') ? 404 : 200, {
          'Content-Type': 'application/json',
        });
        res.end(JSON.stringify({ echo: body }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/prefix/`;
  });

  after(function () {
    server.closeAllConnections();
    server.close();
  });

  it('sends the credential, headers and body, under the server path, on one kept-alive connection', async function () {
    let calls = 0;
    const transport = new Transport({
      server: base.replace(/\/$/, ''),
      tls: { rejectUnauthorized: true },
      authorization: () => Promise.resolve(`Bearer t${++calls}`),
    });
    seen.length = 0;
    const first = await transport.send({
      method: 'PATCH',
      path: '/api/v1/pods/a?fieldManager=x',
      headers: { 'Content-Type': 'application/merge-patch+json' },
      body: '{"ü":1}',
    });
    expect(first.status).to.equal(200);
    expect(JSON.parse(await first.text())).to.deep.equal({ echo: '{"ü":1}' });
    const second = await transport.send({ method: 'GET', path: '/api/v1/missing', headers: {} });
    expect(second.status).to.equal(404);
    await second.text();
    expect(seen.map((s) => [s.method, s.url])).to.deep.equal([
      ['PATCH', '/prefix/api/v1/pods/a?fieldManager=x'],
      ['GET', '/prefix/api/v1/missing'],
    ]);
    expect(seen[0]!.headers).to.include({
      authorization: 'Bearer t1',
      'content-type': 'application/merge-patch+json',
      'content-length': String(Buffer.byteLength('{"ü":1}')),
    });
    expect(seen[1]!.headers.authorization).to.equal('Bearer t2');
    expect(seen[1]!.port, 'the same client socket').to.equal(seen[0]!.port);
    transport.close();
  });

  it('streams a body as it arrives and ends the stream with an error when aborted', async function () {
    const transport = new Transport({
      server: base,
      tls: { rejectUnauthorized: true },
      authorization: () => Promise.resolve(undefined),
    });
    const abort = new AbortController();
    const response = await transport.send({
      method: 'GET',
      path: '/api/v1/pods?watch=true',
      headers: {},
      signal: abort.signal,
    });
    const received: string[] = [];
    let failure: unknown;
    try {
      for await (const chunk of response.chunks()) {
        received.push(chunk.toString());
        abort.abort();
      }
    } catch (error) {
      failure = error;
    }
    expect(received).to.deep.equal(['{"type":"ADDED"}\n']);
    // node:http ends an aborted response with ECONNRESET ("aborted"); callers check their signal.
    expect((failure as NodeJS.ErrnoException | undefined)?.code).to.equal('ECONNRESET');
    expect(seen.at(-1)!.headers).to.not.have.property('authorization');
    transport.close();
  });

  it('fails a request that gets no answer within its timeout', async function () {
    const silent = http.createServer(() => {
      /* never answers */
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const transport = new Transport({
      server: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
      tls: { rejectUnauthorized: true },
      authorization: () => Promise.resolve(undefined),
    });
    let failure: unknown;
    try {
      await transport.send({ method: 'GET', path: '/api', headers: {}, timeoutMs: 100 });
    } catch (error) {
      failure = error;
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
    expect(failure).to.be.instanceOf(RequestTimeoutError);
    expect((failure as Error).message).to.equal('GET /api: no response within 100 ms');
  });

  it('fails a request to a closed port with the connection error', async function () {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const transport = new Transport({
      server: `http://127.0.0.1:${port}`,
      tls: { rejectUnauthorized: true },
      authorization: () => Promise.resolve(undefined),
    });
    let failure: unknown;
    try {
      await transport.send({ method: 'GET', path: '/api', headers: {} });
    } catch (error) {
      failure = error;
    }
    expect((failure as NodeJS.ErrnoException | undefined)?.code).to.equal('ECONNREFUSED');
  });
});
