/**
 * Prompts: WAV files (8 kHz mono, 16-bit PCM or G.711) converted once at load
 * into both G.711 laws, so playing one is a copy of ready frames.
 */
import { readdir, readFile } from 'node:fs/promises';
import { nextTurn } from '@switchboard/platform';
import { basename, join } from 'node:path';
import { encode, type Law } from './g711';
import { tone } from './tone';
import { readWav } from './wav';

export interface Prompt {
  readonly name: string;
  readonly pcm: Int16Array;
  readonly g711: Readonly<Record<Law, Uint8Array>>;
  readonly ms: number;
}

export function promptFromPcm(name: string, pcm: Int16Array): Prompt {
  return { name, pcm, g711: { pcmu: encode(pcm, 'pcmu'), pcma: encode(pcm, 'pcma') }, ms: pcm.length / 8 };
}

/** Prompt names are file names without .wav: letters, digits, '-', '_'. */
export const PROMPT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Built-in prompts made in code: the recording beep and a short silence. */
export function builtinPrompts(): Map<string, Prompt> {
  return new Map([
    ['beep', promptFromPcm('beep', tone(1000, 400, 8000))],
    ['silence', promptFromPcm('silence', new Int16Array(4000))],
  ]);
}

export class PromptSet {
  private readonly prompts = builtinPrompts();

  /**
   * Load every *.wav of a directory (a missing directory loads nothing). Returns the names loaded;
   * bad files throw naming the file. One file at a time, with a turn of the event loop after each:
   * the services already started in this process go on meanwhile.
   */
  async loadDir(dir: string): Promise<string[]> {
    let files: string[];
    try {
      files = (await readdir(dir)).filter((f) => f.toLowerCase().endsWith('.wav'));
    } catch {
      return [];
    }
    const names: string[] = [];
    for (const f of files) {
      const name = basename(f, f.slice(-4));
      if (!PROMPT_NAME.test(name)) continue;
      try {
        this.prompts.set(name, promptFromPcm(name, readWav(await readFile(join(dir, f)))));
      } catch (e) {
        throw new Error(`prompt ${join(dir, f)}: ${(e as Error).message}`);
      }
      names.push(name);
      await nextTurn();
    }
    return names;
  }

  set(p: Prompt): void {
    this.prompts.set(p.name, p);
  }

  get(name: string): Prompt | undefined {
    return this.prompts.get(name);
  }

  has(name: string): boolean {
    return this.prompts.has(name);
  }

  get names(): string[] {
    return [...this.prompts.keys()];
  }
}
