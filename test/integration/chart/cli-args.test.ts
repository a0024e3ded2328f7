import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { controllerFlags, stackOptions } from '../../../src/cli/controller.js';
import { driverFlags, driverOptions } from '../../../src/cli/driver.js';
import { parseCommandFlags } from '../../../src/cli/flags.js';
import { registrarFlags, registrarOptions } from '../../../src/cli/registrar.js';
import { silentLogger } from '../../../src/observability/logger.js';
import { alicloudValues, renderChart, type KubeManifest } from './helm.js';

interface Container {
  name: string;
  args?: string[];
}

/** The snapback containers of the chart's workloads, with their arguments as kubelet passes them. */
function snapbackContainers(manifests: KubeManifest[]): { where: string; args: string[] }[] {
  return manifests
    .filter((m) => m.kind === 'Deployment' || m.kind === 'DaemonSet')
    .flatMap((m) =>
      (
        m as unknown as { spec: { template: { spec: { containers: Container[] } } } }
      ).spec.template.spec.containers
        .filter((c) => ['controller', 'driver', 'registrar'].includes(c.args?.[0] ?? ''))
        .map((c) => ({
          where: `${m.kind}/${m.metadata.name} container ${c.name}`,
          // kubelet expands $(VAR) from the container's env
          args: c.args!.map((a) =>
            a.replace('$(POD_NAMESPACE)', 'snapback-system').replace('$(NODE_NAME)', 'node-1'),
          ),
        })),
    );
}

/**
 * The chart and the `snapback` command must agree on every flag: a flag the command does not
 * know stops the container at start-up, which no `helm install` test can see without a kubelet.
 */
describe('Helm chart charts/snapback: arguments the snapback command accepts', function () {
  // in-cluster configuration does not exist here; any kubeconfig file lets the flags parse
  const kubeconfig = path.join(mkdtempSync(path.join(os.tmpdir(), 'snapback-args-')), 'kubeconfig');
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

  for (const [label, args] of [
    ['default values (local backend)', []],
    ['ACK values (alicloud backend)', ['-f', alicloudValues]],
    ['backend none', ['--set', 'driver.backend=none']],
    [
      'cross-namespace data sources on',
      ['--set', 'controller.crossNamespaceVolumeDataSource=true'],
    ],
  ] as const) {
    it(`parses every controller, driver and registrar command line of the ${label}`, async function () {
      const containers = snapbackContainers(await renderChart([...args]));
      expect(containers.length).to.be.greaterThan(0);
      if (label.includes('local backend')) {
        expect(containers.map((c) => c.where)).to.include(
          'DaemonSet/snapback-node container node-driver-registrar',
        );
      }
      for (const { where, args: commandLine } of containers) {
        const [command, ...flags] = commandLine;
        try {
          if (command === 'controller') {
            const values = parseCommandFlags(controllerFlags, flags).values;
            const options = stackOptions({ ...values, kubeconfig }, {}, silentLogger());
            expect(options.httpEndpoint, where).to.match(/^:\d+$/);
          } else if (command === 'registrar') {
            const options = registrarOptions(parseCommandFlags(registrarFlags, flags).values);
            expect(options.pluginRegistrationPath, where).to.equal('/registration');
          } else {
            driverOptions(parseCommandFlags(driverFlags, flags).values);
          }
        } catch (error) {
          expect.fail(`${where}: ${(error as Error).message}`);
        }
      }
    });
  }
});
