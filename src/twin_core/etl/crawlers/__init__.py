"""Built-in crawlers. Each is registered in the ``twin_core.crawlers`` entry-point group."""
