import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { registrarOptions, withoutTimestamps } from '../../../src/cli/registrar.js';
import { packagedFile } from '../../../src/csi/proto.js';
import { registrationProtoEnv, resolveRegistrationProto } from '../../../src/csi/registration.js';

const required = {
  'csi-address': '/csi/csi.sock',
  'kubelet-registration-path': '/var/lib/kubelet/plugins/local.snapback.dev/csi.sock',
};

describe('cli: snapback registrar flags', function () {
  it("takes upstream node-driver-registrar's flags, with its defaults", function () {
    expect(registrarOptions(required)).to.deep.equal({
      csiAddress: 'unix:///csi/csi.sock',
      kubeletRegistrationPath: '/var/lib/kubelet/plugins/local.snapback.dev/csi.sock',
      pluginRegistrationPath: '/registration',
      httpEndpoint: undefined,
      timeoutMs: 1_000,
      csiProto: undefined,
      registrationProto: undefined,
    });
    const options = registrarOptions({
      'csi-address': 'unix:///csi/csi.sock',
      // kubelet dials a bare path: a scheme given here is not passed on
      'kubelet-registration-path': 'unix:///var/lib/kubelet/plugins/x/csi.sock',
      'plugin-registration-path': '/var/lib/kubelet/plugins_registry/',
      'http-endpoint': ':9809',
      timeout: '2s500ms',
    });
    expect(options).to.deep.include({
      csiAddress: 'unix:///csi/csi.sock',
      kubeletRegistrationPath: '/var/lib/kubelet/plugins/x/csi.sock',
      pluginRegistrationPath: '/var/lib/kubelet/plugins_registry/',
      httpEndpoint: ':9809',
      timeoutMs: 2_500,
    });
  });

  it('says what is missing, unknown or malformed', function () {
    expect(() => registrarOptions({ 'kubelet-registration-path': '/x.sock' })).to.throw(
      /--csi-address is required/,
    );
    expect(() => registrarOptions({ 'csi-address': '/csi/csi.sock' })).to.throw(
      /--kubelet-registration-path is required/,
    );
    expect(() => registrarOptions({ ...required, mode: 'registration' })).to.throw(
      /unknown flag --mode \(known: --csi-address/,
    );
    expect(() => registrarOptions({ ...required, 'csi-address': 'csi.sock' })).to.throw(
      /is not a unix socket/,
    );
    expect(() =>
      registrarOptions({ ...required, 'kubelet-registration-path': 'tcp://x:1' }),
    ).to.throw(/is not a unix socket/);
    expect(() =>
      registrarOptions({ ...required, 'plugin-registration-path': 'registry' }),
    ).to.throw(/--plugin-registration-path must be absolute/);
    expect(() => registrarOptions({ ...required, timeout: '1' })).to.throw(
      /--timeout: "1" is not a duration/,
    );
    expect(() => registrarOptions({ ...required, timeout: '0s' })).to.throw(
      /--timeout must be positive/,
    );
  });
});

describe('cli: snapback registrar retries', function () {
  it('tells failures apart without the time grpc-js stamps on them', function () {
    const at = (time: string) =>
      `14 UNAVAILABLE: No connection established. Last error: read ECONNRESET (${time}). Resolution note: `;
    expect(withoutTimestamps(at('2026-12-02T12:00:54.654Z'))).to.equal(
      withoutTimestamps(at('2026-12-02T12:00:55.001Z')),
    );
    expect(withoutTimestamps(at('2026-12-02T12:00:54.654Z'))).to.equal(
      '14 UNAVAILABLE: No connection established. Last error: read ECONNRESET. Resolution note: ',
    );
    expect(withoutTimestamps('connect ENOENT /csi/csi.sock')).to.equal(
      'connect ENOENT /csi/csi.sock',
    );
  });
});

describe('csi/registration: where pluginregistration.proto is', function () {
  let dir: string;
  let proto: string;

  beforeEach(function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-registration-proto-'));
    proto = path.join(dir, 'pluginregistration.proto');
    writeFileSync(proto, 'syntax = "proto3";\n');
  });

  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes the flag first, then the environment variable', function () {
    const missing = path.join(dir, 'missing.proto');
    expect(resolveRegistrationProto(proto, { [registrationProtoEnv]: missing })).to.equal(proto);
    expect(resolveRegistrationProto(undefined, { [registrationProtoEnv]: proto })).to.equal(proto);
  });

  it('fails on a path that was asked for and is missing, even when another copy exists', function () {
    const missing = path.join(dir, 'missing.proto');
    expect(() => resolveRegistrationProto(missing, { [registrationProtoEnv]: proto })).to.throw(
      `pluginregistration.proto not found at ${missing} (from --registration-proto)`,
    );
    expect(() => resolveRegistrationProto(undefined, { [registrationProtoEnv]: missing })).to.throw(
      `(from $${registrationProtoEnv}); pass --registration-proto=<path> or set ${registrationProtoEnv}`,
    );
  });

  it("falls back to dist/pluginregistration.proto, the build's copy", function () {
    const packaged = packagedFile('pluginregistration.proto');
    expect(packaged).to.match(/\/dist\/pluginregistration\.proto$/);
    let resolved: string | undefined;
    try {
      resolved = resolveRegistrationProto(undefined, {});
    } catch (error) {
      expect((error as Error).message).to.contain(
        `not found at ${packaged} (from the build output)`,
      );
    }
    if (resolved !== undefined) expect(resolved).to.equal(packaged);
  });
});
