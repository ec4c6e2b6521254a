// The proxies that keep a keep-alive pool to the app, as bench/balance.mjs and the balance load test
// (test/load/balance.load.test.ts) run them: nginx (`upstream { keepalive N; }`, HTTP/1.1 upstream,
// every temp path in its own directory) and HAProxy (`http-reuse always`), each listening on
// 127.0.0.1:listen in front of 127.0.0.1:upstream, in the foreground.

const HOST = '127.0.0.1';

/** The config file to write for `proxy` in `dir`, its text, and the proxy's arguments to run it. */
export function proxyConfig(proxy, { dir, listen, upstream, keepalive = 4 }) {
  if (proxy === 'nginx') {
    const file = `${dir}/nginx.conf`;
    const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${dir}/${kind};`).join('\n');
    const text = `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
${temp}
  upstream app { server ${HOST}:${upstream}; keepalive ${keepalive}; }
  server {
    listen ${HOST}:${listen};
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`;
    return { file, text, args: ['-p', dir, '-c', file] };
  }
  const file = `${dir}/haproxy.cfg`;
  const text = `global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend in
  bind ${HOST}:${listen}
  default_backend app
backend app
  server app ${HOST}:${upstream}
`;
  return { file, text, args: ['-db', '-f', file] };
}
