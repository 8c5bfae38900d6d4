export const commands: import('@kaching/contracts').Command[] = [];
