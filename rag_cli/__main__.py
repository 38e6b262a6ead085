from rag_cli.commands import app

app()
