export const SIGNIN_CSS = `
*{box-sizing:border-box}html,body{margin:0;min-height:100%;background:#111a2e;color:#1b2430;font:14px/1.45 Inter,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:380px;margin:12vh auto 0;background:#fff;border-radius:12px;padding:28px 28px 24px;box-shadow:0 10px 30px rgba(0,0,0,.35)}
.brand{font-weight:800;letter-spacing:.08em;font-size:18px}.brand span{color:#3156d3}
h1{font-size:17px;margin:14px 0 18px;font-weight:650}
label{display:block;font-size:12px;font-weight:600;color:#66758a;margin-bottom:12px}
input{display:block;width:100%;margin-top:4px;padding:9px 10px;border:1px solid #d3dae4;border-radius:7px;font:inherit;color:#1b2430}
input:focus{outline:2px solid #8fb0ff;border-color:#3156d3}
button{width:100%;margin-top:6px;padding:10px;border:0;border-radius:7px;background:#3156d3;color:#fff;font:inherit;font-weight:700;cursor:pointer}
.err{color:#d64545;margin:14px 0 0;min-height:1.2em}
`;
