import type { Command } from '@kaching/contracts';

export const commands: Command[] = [];
