import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/** Where `make image` puts its images and what they are called; the test harness reads these. */

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** $SNAPBACK_CACHE, defaulting as the Makefile does to ${XDG_CACHE_HOME:-$HOME/.cache}/snapback. */
export function snapbackCache(): string {
  if (process.env.SNAPBACK_CACHE) return process.env.SNAPBACK_CACHE;
  const xdg = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(xdg, 'snapback');
}

/** The image build's caches: debootstrap trees, staged node_modules, layer records, logs. */
export function imageCacheDir(): string {
  return path.join(snapbackCache(), 'images');
}

/** The OCI image layout (oci-layout, index.json, blobs/) holding every image `make image` builds. */
export function imageLayoutDir(): string {
  return path.join(imageCacheDir(), 'oci');
}

/** The operator's version: the chart's appVersion. */
export function snapbackVersion(): string {
  const chart = parse(readFileSync(path.join(repoRoot, 'charts/snapback/Chart.yaml'), 'utf8')) as {
    appVersion?: unknown;
  };
  if (chart.appVersion === undefined)
    throw new Error('charts/snapback/Chart.yaml has no appVersion');
  return String(chart.appVersion);
}

/** The pod sandbox binary's version: `const version` in tools/pause/main.go. */
export function pauseVersion(): string {
  const source = readFileSync(path.join(repoRoot, 'tools/pause/main.go'), 'utf8');
  const version = /^const version = "([^"]+)"/m.exec(source)?.[1];
  if (!version) throw new Error('tools/pause/main.go has no `const version = "..."`');
  return version;
}

/** `<repository>:<tag>` of each image, without a registry host (index.json's ref.name). */
export function imageRefs(): { snapback: string; pause: string; nginx: string } {
  return {
    snapback: `snapback-dev/snapback:${snapbackVersion()}`,
    pause: `snapback/pause:${pauseVersion()}`,
    nginx: 'library/nginx:latest',
  };
}
