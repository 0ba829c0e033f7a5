"""trademesh {{ cookiecutter.slug }}: {{ cookiecutter.description }}"""
