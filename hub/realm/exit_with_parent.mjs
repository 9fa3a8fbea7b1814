// Preloaded with `node --import`: end this process when its parent (JupyterHub) is gone,
// so a crashed hub leaves no realm holding the port its successor needs.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 1000).unref();
