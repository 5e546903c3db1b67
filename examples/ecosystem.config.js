// PM2, as with the original oca-proxy:  pm2 start examples/ecosystem.config.js
// (run from the oca-addon checkout; uv must be on PATH)
module.exports = {
  apps: [
    {
      name: "oca-proxy",
      script: "uv",
      args: "run oca-proxy --no-browser",
      interpreter: "none",
      cwd: __dirname + "/..",
      autorestart: true,
      env: { PYTHONUNBUFFERED: "1" },
    },
  ],
};
