// Builds dist/ (monaco.js, monaco.css + codicon font, editor.worker.js, yaml.worker.js) with esbuild.
//
//   node build.mjs          installs node_modules (npm ci) if missing or older than package-lock.json, then builds
//                           if dist/ is missing or older than its inputs; otherwise does nothing.
//   node build.mjs --force  always builds (npm run build).
//
// Called by src/RunbookPortal.Web/Monaco.targets. Builds of the same checkout may run at the same time (parallel
// project builds, two terminals), and two `npm ci` in one folder break each other, so everything below runs under
// a lock (a directory, created atomically) and re-checks freshness once it holds the lock.
// Only Node built-ins are imported statically: node_modules may not exist yet.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.dirname(fileURLToPath(import.meta.url));
const at = (...parts) => path.join(root, ...parts);
const dist = at('dist');
const force = process.argv.includes('--force');

// Keep these two lists in sync with the Inputs/Outputs of RbpMonacoBuild in Monaco.targets.
const outputs = ['monaco.js', 'monaco.css', 'editor.worker.js', 'yaml.worker.js', '.stamp'].map((f) => path.join(dist, f));
const inputs = () => [at('package.json'), at('package-lock.json'), at('build.mjs'), ...listFiles(at('src'))];

function listFiles(dir) {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath ?? e.path, e.name));
}

const mtime = (file) => fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs;

/** True when every output exists and is newer than every input. */
function upToDate(ins, outs) {
  const outTimes = outs.map(mtime);
  if (outTimes.some((t) => t === undefined)) return false;
  const newestIn = Math.max(...ins.map((f) => mtime(f) ?? Infinity));
  return newestIn <= Math.min(...outTimes);
}

const lockDir = at('.build-lock');
const lockInfo = path.join(lockDir, 'owner.json');
const staleAfterMs = 15 * 60 * 1000;

function lockIsAbandoned() {
  let owner;
  try {
    owner = JSON.parse(fs.readFileSync(lockInfo, 'utf8'));
  } catch {
    // Just created and not written yet, or unreadable: judge by the directory's age.
    return Date.now() - (mtime(lockDir) ?? Date.now()) > staleAfterMs;
  }
  if (Date.now() - owner.since > staleAfterMs) return true;
  if (owner.host !== os.hostname()) return false;
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (e) {
    return e.code === 'ESRCH';
  }
}

async function withLock(work) {
  const started = Date.now();
  let told = false;
  for (;;) {
    try {
      fs.mkdirSync(lockDir);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      if (lockIsAbandoned()) {
        console.log(`monaco: removing an abandoned lock ${lockDir}`);
        fs.rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (!told) {
        console.log('monaco: another build of this folder is running; waiting for it');
        told = true;
      }
      if (Date.now() - started > staleAfterMs) throw new Error(`timed out waiting for ${lockDir}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  fs.writeFileSync(lockInfo, JSON.stringify({ pid: process.pid, host: os.hostname(), since: Date.now() }));
  try {
    return await work();
  } finally {
    fs.rmSync(lockDir, { recursive: true, force: true });
  }
}

function npmCi({ always = false } = {}) {
  // npm ci writes node_modules/.package-lock.json; it is older than package-lock.json when the lock file changed.
  if (!always && upToDate([at('package-lock.json')], [at('node_modules', '.package-lock.json')])) return false;
  console.log('monaco: npm ci');
  const t0 = Date.now();
  // --include=dev: the build tools are devDependencies, which NODE_ENV=production would otherwise leave out.
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--include=dev'], {
    cwd: root,
    stdio: 'inherit',
    shell: process.platform === 'win32', // npm is npm.cmd there
  });
  if (r.error) throw new Error(`could not run npm (${r.error.message}); install Node.js 20+ with npm`);
  if (r.status !== 0) throw new Error(`npm ci failed with exit code ${r.status}`);
  console.log(`monaco: npm ci took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return true;
}

async function bundle() {
  const esbuild = await import(pathToFileURL(at('node_modules', 'esbuild', 'lib', 'main.js')).href);
  const t0 = Date.now();
  fs.rmSync(dist, { recursive: true, force: true });

  const common = {
    absWorkingDir: root,
    bundle: true,
    minify: true,
    format: 'iife',
    target: 'es2022',
    outdir: dist,
    legalComments: 'linked', // the licences go to *.LEGAL.txt next to each file
    logLevel: 'warning',
  };

  await Promise.all([
    // The editor. The CSS it imports is gathered into monaco.css; the codicon font is copied next to it.
    esbuild.build({
      ...common,
      entryPoints: { monaco: 'src/monaco.js' },
      loader: { '.ttf': 'file' },
      assetNames: '[name]-[hash]',
    }),
    // The workers: classic scripts, started by MonacoEnvironment.getWorker in monaco.js.
    esbuild.build({
      ...common,
      entryPoints: {
        'editor.worker': 'monaco-editor/esm/vs/editor/editor.worker.js',
        'yaml.worker': 'monaco-yaml/yaml.worker.js',
      },
    }),
  ]);

  for (const f of outputs.slice(0, -1)) {
    if (!fs.existsSync(f)) throw new Error(`esbuild did not produce ${f}`);
  }
  fs.writeFileSync(outputs.at(-1), `${new Date().toISOString()}\n`);

  const sizes = fs.readdirSync(dist)
    .filter((f) => !f.startsWith('.'))
    .map((f) => `${f} ${(fs.statSync(path.join(dist, f)).size / 1024).toFixed(0)} KiB`);
  console.log(`monaco: built dist/ in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${sizes.join(', ')}`);
}

try {
  await withLock(async () => {
    const installed = npmCi();
    if (!force && upToDate(inputs(), outputs)) {
      console.log('monaco: dist/ is up to date');
      return;
    }
    try {
      await bundle();
    } catch (e) {
      // esbuild reports problems in the code as e.errors. Anything else (esbuild cannot start, a package file is
      // missing) means a damaged node_modules, e.g. after a clean-up that deleted every bin/ folder: reinstall once.
      if (installed || e.errors) throw e;
      console.log(`monaco: ${e.message.trim().split('\n')[0]}`);
      console.log('monaco: node_modules looks damaged; reinstalling');
      npmCi({ always: true });
      await bundle();
    }
  });
} catch (e) {
  console.error(`monaco: error: ${e.message}`);
  process.exitCode = 1;
}
