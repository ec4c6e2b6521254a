// reuseport/register: `node --require reuseport/register app.js`, `node --import reuseport/register
// app.mjs`, or NODE_OPTIONS=--require=reuseport/register. Loading it installs the hook; the exports
// only say whether it is installed.
import { installHook, isHookInstalled } from './install';

installHook();

export { isHookInstalled };
